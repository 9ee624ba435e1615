"""The human evaluation (config key ``human_evaluation``; the paper's Table 3 and Table 4): its typed block, its
files in each replicate and what the rules take from the tables' rows.

Table 3's comparisons are the rows of ``table3`` in the tables file (side A, and side B under ``versus``); Table
4's rows are those of ``table4``. Both read the rows' test generations (``generations.parquet``), so the stage
trains and samples nothing of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rrhf.config.typed_config import Block
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


def human_evaluation_file(plan: "Plan", name: str, replicate: int | str = 0) -> str:
    """A file of the human evaluation in a replicate (results/[replicate{r}/]human_eval/{name}): it reads the
    trained models' generations, so it lives with the training stage's files."""
    return f"results/{plan.folder(replicate, 'training')}human_eval/{name}"


def batch_files(plan: "Plan", kind: str, replicate: int | str = 0) -> list[str]:
    """Each annotator's batch as ``kind``: "html" (the page), "csv" (the spreadsheet) or "json" (the simulated
    annotator's judgments)."""
    folder = "simulated/" if kind == "json" else ""
    return [human_evaluation_file(plan, f"{folder}batch_{k}.{kind}", replicate)
            for k in plan.human_evaluation.batches]


def judgment_files(plan: "Plan", replicate: int | str = 0) -> list[str]:
    """The judgment files read into a replicate's Table 3: people's (every *.json and *.csv directly in
    human_evaluation.judgments, sorted; none while the folder is absent), else the simulated annotators'."""
    folder = plan.human_evaluation.judgments
    if folder is None:
        return batch_files(plan, "json", replicate)
    if not Path(folder).is_dir():
        return []
    return sorted(str(path) for path in Path(folder).iterdir() if path.suffix.lower() in (".json", ".csv"))


def comparisons(plan: "Plan", replicate: int | str = 0) -> list[dict[str, Any]]:
    """Table 3's comparisons as the export rule passes them: number, the two sides' labels and generations."""
    return [{"number": row.number, "a": side_label(plan, row), "b": side_label(plan, row.versus),
             "a_generations": row_file(plan, row, "generations.parquet", replicate),
             "b_generations": row_file(plan, row.versus, "generations.parquet", replicate)}
            for row in plan.tables.get("table3", [])]


def human_replicates(plan: "Plan") -> list[int]:
    """The replicates Table 3 is judged in: every one with simulated annotators, replicate 0 with people's."""
    return [0] if plan.human_evaluation.judgments else list(plan.replicates.numbers())


def table4_rows(plan: "Plan") -> list[dict[str, str]]:
    """Table 4's rows: the label the CSV gives each and its test generations (replicate 0)."""
    return [{**row_label(plan, row), "path": row_file(plan, row, "generations.parquet")}
            for row in plan.tables.get("table4", [])]


def human_evaluation_problems(plan: "Plan") -> list[str]:
    """What the human evaluation cannot do: Table 3 or 4 rows without the block, more pairs than test prompts,
    simulated annotators without a gold reward."""
    study, problems = plan.human_evaluation, []
    listed = [table for table in ("table3", "table4") if plan.tables.get(table)]
    if study is None:
        return [f"{plan.tables_file.name}: {table} needs the config's `human_evaluation` block (absent)"
                for table in listed]
    needed = study.pairs + study.shared_pairs
    test_prompts = plan.config["data"].get("test_prompts")
    if plan.tables.get("table3") and test_prompts is not None and needed > test_prompts:
        problems.append(f"human_evaluation.pairs + shared_pairs: {needed} pairs per comparison, but data.test_prompts "
                        f"is {test_prompts}; each pair is a different test prompt")
    if plan.tables.get("table3") and study.pairs * len(plan.tables["table3"]) < study.annotators:
        problems.append(f"human_evaluation.annotators: {study.annotators} annotators, but {study.pairs} pairs for "
                        f"each of {len(plan.tables['table3'])} comparisons leave some with no pair to judge")
    if plan.tables.get("table4") and study.table4_prompts > (test_prompts or study.table4_prompts):
        problems.append(f"human_evaluation.table4_prompts: {study.table4_prompts} is more than data.test_prompts "
                        f"({test_prompts})")
    dataset = plan.config["datasets"].get(plan.config["data"]["dataset"], {})
    if study.judgments is None and plan.tables.get("table3") and dataset.get("source") != "synthetic":
        problems.append(f"human_evaluation.judgments: the dataset {plan.config['data']['dataset']!r} has no gold "
                        "reward, so no simulated annotators can judge; give the folder of people's judgment files "
                        "(saved from results/human_eval/batch_*.html or the filled batch_*.csv)")
    return problems
