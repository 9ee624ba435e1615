"""The studies a whole run plans (the Snakefile hands them to :meth:`rrhf.plan.plan.Plan.from_config`), in the
order their checks run: a study that reads another's files comes after it."""

from rrhf.studies.findings.study import FindingsStudy
from rrhf.studies.fine_grained.study import FineGrainedStudy
from rrhf.studies.human_evaluation.study import HumanEvaluationStudy
from rrhf.studies.overoptimisation.study import OveroptimisationStudy
from rrhf.studies.preference_methods.study import PreferenceMethodsStudy

STUDIES = (OveroptimisationStudy, FineGrainedStudy, HumanEvaluationStudy, PreferenceMethodsStudy, FindingsStudy)
