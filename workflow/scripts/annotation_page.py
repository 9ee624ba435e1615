from rrhf.data.qa_feedback import read_qa_feedback
from rrhf.io import setup_logging
from rrhf.report.pages import write_page
from rrhf.studies.fine_grained.annotation_page import annotation_page

setup_logging(snakemake.log[0])
write_page(annotation_page(read_qa_feedback(snakemake.input.feedback), snakemake.params.title), snakemake.output.page)
