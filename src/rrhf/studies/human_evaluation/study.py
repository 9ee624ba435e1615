"""The human evaluation (config key ``human_evaluation``; the paper's Table 3 and Table 4): its typed block, its
files in each replicate and what the rules take from the tables' rows.

Table 3's comparisons are the rows of ``table3`` in the tables file (side A, and side B under ``versus``); Table
4's rows are those of ``table4``. Both read the rows' test generations (``generations.parquet``), so the stage
trains and samples nothing of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from rrhf.config.typed_config import Block
from rrhf.plan import paths
from rrhf.plan.study import Study
from rrhf.plan.table_rows import TableRow, row_file, row_label

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan


@dataclass(frozen=True)
class SimulatedAnnotators(Block):
    """``human_evaluation.simulated_annotators``: how the stand-in annotators judge by the gold reward."""

    SCHEMA: ClassVar[str] = "human_evaluation.simulated_annotators"
    noise: float
    noise_spread: float
    tie_margin: float
    annotator_bias: dict[str, float]
    seed: int


@dataclass(frozen=True)
class HumanEvaluation(Block):
    """``human_evaluation``: the pairs of each Table 3 comparison, the annotators' batches, whose judgments."""

    SCHEMA: ClassVar[str] = "human_evaluation"
    pairs: int
    shared_pairs: int
    annotators: int
    seed: int
    judgments: str | None
    simulated_annotators: SimulatedAnnotators
    table4_prompts: int

    @property
    def batches(self) -> range:
        """The batch numbers, one per annotator, from 1."""
        return range(1, self.annotators + 1)


def side_label(plan: "Plan", row: TableRow) -> str:
    """How Table 3 and the judgment files name one side of a comparison: "Alpaca DP", "dataset good responses"."""
    label = row_label(plan, row)
    return f"{label['policy']} {label['setting']}"


class HumanEvaluationStudy(Study):
    """Table 3 from blind pairwise judgments and Table 4; ``block`` is its :class:`HumanEvaluation`."""

    KEY = "human_evaluation"
    BLOCK = HumanEvaluation
    block: HumanEvaluation

    def file(self, name: str, replicate: int | str = 0) -> str:
        """A file of the human evaluation in a replicate (results/[replicate{r}/]human_eval/{name}): it reads
        the trained models' generations, so it lives with the training stage's files."""
        return paths.HUMAN_EVALUATION(replicate=self.plan.folder(replicate, "training"), name=name)

    def batch_files(self, kind: str, replicate: int | str = 0) -> list[str]:
        """Each annotator's batch as ``kind``: "html" (the page), "csv" (the spreadsheet) or "json" (the
        simulated annotator's judgments)."""
        folder = "simulated/" if kind == "json" else ""
        return [self.file(f"{folder}batch_{k}.{kind}", replicate) for k in self.block.batches]

    def judgment_files(self, replicate: int | str = 0) -> list[str]:
        """The judgment files read into a replicate's Table 3: people's (every *.json and *.csv directly in
        human_evaluation.judgments, sorted; none while the folder is absent), else the simulated annotators'."""
        folder = self.block.judgments
        if folder is None:
            return self.batch_files("json", replicate)
        if not Path(folder).is_dir():
            return []
        return sorted(str(path) for path in Path(folder).iterdir() if path.suffix.lower() in (".json", ".csv"))

    def comparisons(self, replicate: int | str = 0) -> list[dict[str, Any]]:
        """Table 3's comparisons as the export rule passes them: number, the two sides' labels and generations."""
        plan = self.plan
        return [{"number": row.number, "a": side_label(plan, row), "b": side_label(plan, row.versus),
                 "a_generations": row_file(plan, row, "generations.parquet", replicate),
                 "b_generations": row_file(plan, row.versus, "generations.parquet", replicate)}
                for row in plan.tables.get("table3", [])]

    def replicates(self) -> list[int]:
        """The replicates Table 3 is judged in: every one with simulated annotators, replicate 0 with people's."""
        return [0] if self.block.judgments else list(self.plan.replicates.numbers())

    def table4_rows(self) -> list[dict[str, str]]:
        """Table 4's rows: the label the CSV gives each and its test generations (replicate 0)."""
        plan = self.plan
        return [{**row_label(plan, row), "path": row_file(plan, row, "generations.parquet")}
                for row in plan.tables.get("table4", [])]

    @classmethod
    def problems_without(cls, plan: "Plan") -> list[str]:
        return [f"{plan.tables_file.name}: {table} needs the config's `human_evaluation` block (absent)"
                for table in ("table3", "table4") if plan.tables.get(table)]

    def problems(self) -> list[str]:
        """More pairs than test prompts, more annotators than pairs, simulated annotators without a gold
        reward."""
        plan, study, problems = self.plan, self.block, []
        needed = study.pairs + study.shared_pairs
        test_prompts = plan.config["data"].get("test_prompts")
        if plan.tables.get("table3") and test_prompts is not None and needed > test_prompts:
            problems.append(f"human_evaluation.pairs + shared_pairs: {needed} pairs per comparison, but "
                            f"data.test_prompts is {test_prompts}; each pair is a different test prompt")
        if plan.tables.get("table3") and study.pairs * len(plan.tables["table3"]) < study.annotators:
            problems.append(f"human_evaluation.annotators: {study.annotators} annotators, but {study.pairs} pairs "
                            f"for each of {len(plan.tables['table3'])} comparisons leave some with no pair to judge")
        if plan.tables.get("table4") and study.table4_prompts > (test_prompts or study.table4_prompts):
            problems.append(f"human_evaluation.table4_prompts: {study.table4_prompts} is more than "
                            f"data.test_prompts ({test_prompts})")
        dataset = plan.config["datasets"].get(plan.config["data"]["dataset"], {})
        if study.judgments is None and plan.tables.get("table3") and dataset.get("source") != "synthetic":
            problems.append(f"human_evaluation.judgments: the dataset {plan.config['data']['dataset']!r} has no "
                            "gold reward, so no simulated annotators can judge; give the folder of people's judgment "
                            "files (saved from results/human_eval/batch_*.html or the filled batch_*.csv)")
        return problems

    def targets(self, note: Callable[[str], None]) -> list[str]:
        """Table 3 (and its page) when its judgments can be read (people's folder given and not empty, or
        simulated annotators), Table 4, and the export's pages, which the report links."""
        plan, targets = self.plan, []
        if plan.tables.get("table4"):
            targets += [paths.TABLE(table="table4"), paths.TABLE_PAGE(table="table4")]
        if plan.tables.get("table3"):
            targets += self.batch_files("html") + self.batch_files("csv")
            if self.block.judgments and not self.judgment_files():
                note(f"human_evaluation.judgments: no judgment files in {self.block.judgments} yet: `all` makes the "
                     "pages to hand out (results/human_eval/batch_*.html) and leaves out results/table3.csv")
            else:
                targets += [paths.TABLE(table="table3"), paths.TABLE_PAGE(table="table3")]
        return targets
