"""Where every file of a run lives: one template per kind of file, written once here.

The rule files give the templates as their outputs, with the wildcards they do not fill left in
(``TRAINED_MODEL()`` is ``results/{replicate}models/{policy}/{setting}``); the plan and the studies fill them in
(``TRAINED_MODEL(replicate="", policy="instruct", setting="DP")``). No other module formats a path of a run.

``{replicate}`` is the replicate's folder prefix: "" for replicate 0 and for every file of a stage its replicate
does not re-seed, ``replicate{r}/`` otherwise (:mod:`rrhf.plan.replicates`). It is a prefix rather than a
folder of its own so that replicate 0's files stay where `make run` puts them and a user types them.

Logs and benchmarks follow one rule: ``logs/{rule}/{stem}.log`` and ``logs/benchmarks/{rule}/{stem}.tsv``, the
stem being the output's wildcards (:func:`log_file`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

WILDCARD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    """A path with ``{wildcard}`` fields; calling it fills the fields given and leaves the others as they are."""

    pattern: str

    def __call__(self, **values: object) -> str:
        unknown = set(values) - set(self.wildcards)
        if unknown:
            raise KeyError(f"{self.pattern}: no wildcard {sorted(unknown)}")
        return WILDCARD.sub(lambda match: str(values.get(match.group(1), match.group(0))), self.pattern)

    def parse(self, path: str, within: bool = False) -> dict[str, str] | None:
        """The wildcards of a path this template makes, or (``within``) of a path inside such a folder; None for
        any other path. ``{replicate}`` is empty or ``replicate{r}/``, every other wildcard one path segment."""
        parts = re.split(r"(\{\w+\})", self.pattern)
        pattern = "".join(f"(?P<{part[1:-1]}>(?:replicate[1-9][0-9]*/)?)" if part == "{replicate}" else
                          f"(?P<{part[1:-1]}>[^/]+)" if WILDCARD.fullmatch(part) else re.escape(part) for part in parts)
        match = re.fullmatch(pattern + ("(?:/.*)?" if within else ""), path)
        return match.groupdict() if match else None

    @property
    def wildcards(self) -> list[str]:
        return WILDCARD.findall(self.pattern)

    def __str__(self) -> str:
        return self.pattern


# --- resources: what the models stage makes (and the prepared data) ---------------------------------------------
DATASET = Template("resources/data/{dataset}/{split}.parquet")
# A built model (a tokenizer and an imported model are never re-seeded: their replicate prefix is always "").
MODEL = Template("resources/models/{replicate}{name}")
ON_POLICY_PAIRS = Template("resources/preferences/{replicate}{name}.parquet")

# --- results of the paper's pipeline ------------------------------------------------------------------------------
SAMPLES = Template("results/{replicate}samples/{policy}/{sampler}.parquet")
ITERATED_SAMPLES = Template("results/{replicate}samples/{policy}/{iteration}/{sampler}.parquet")
REWARDS = Template("results/{replicate}rewards/{policy}/{sampler}.parquet")
ITERATED_REWARDS = Template("results/{replicate}rewards/{policy}/{iteration}/{sampler}.parquet")
PROVIDED_REWARDS = Template("results/{replicate}rewards/provided.parquet")
# With `shards: N`, samples and rewards are made in N shards and gathered (rule gather_shards).
GATHERED = Template("results/{replicate}{stage}/{path}.parquet")
SHARD = Template("results/{replicate}{stage}/{path}/shard{shard}.parquet")
TRAINING_SET = Template("results/{replicate}scored/{policy}/{setting}.parquet")
TRAINED_MODEL = Template("results/{replicate}models/{policy}/{setting}")
EVALUATION_FOLDER = Template("results/{replicate}eval/{policy}/{setting}")
EVALUATION = Template(EVALUATION_FOLDER.pattern + "/{name}")
BEST_OF_N = Template("results/{replicate}eval/{policy}/best-of-{n}/{name}")
DATASET_REPLIES = Template("results/{replicate}eval/dataset/{source}/{name}")
REWARD_MODEL_EVALUATION = Template("results/{replicate}eval/reward_model/{name}")
PROMPT_FORMAT = Template("results/prompt_formats/{format}/{name}")
TABLE = Template("results/{table}.csv")
TABLE_PAGE = Template("results/report/{table}.html")
GENERATIONS_PAGE = Template("results/report/generations_{table}.html")
LOSS_CURVE = Template("results/figures/loss_curve_{policy}_{setting}.png")
TRAINING_REWARDS_FIGURE = Template("results/figures/train_rewards_{table}.png")
EVALUATION_REWARDS_FIGURE = Template("results/figures/eval_rewards_{table}.png")
INTERVALS_FIGURE = Template("results/figures/intervals_{table}.png")
REWARD_BUILDS = Template("results/reward_models.csv")
PROMPT_FORMATS = Template("results/prompt_formats.csv")

# --- results of the studies -----------------------------------------------------------------------------------------
OVEROPTIMISATION = Template("results/{replicate}overoptimisation.csv")
OVEROPTIMISATION_FIGURE = Template("results/{replicate}figures/overoptimisation.png")
OVEROPTIMISATION_METHODS = Template("results/overoptimisation_methods.csv")
OVEROPTIMISATION_METHODS_FIGURE = Template("results/figures/overoptimisation_methods.png")
FINE_GRAINED = Template("results/{replicate}fine_grained/{name}")
SEGMENT_REWARD_MODEL = Template("results/{replicate}fine_grained/reward_models/{kind}")
FINE_GRAINED_EVALUATION = Template("results/{replicate}fine_grained/eval/{policy}/{setting}/{name}")
FINE_GRAINED_REWARD_MODELS = Template("results/fine_grained_reward_models.csv")
ANNOTATION_PAGE = Template("results/fine_grained/annotation.html")
HUMAN_EVALUATION = Template("results/{replicate}human_eval/{name}")
METHOD_EXAMPLES = Template("results/{replicate}methods/{policy}/{setting}/{name}")
FINDINGS = Template("results/findings.csv")
FINDINGS_PAGE = Template("results/report/findings.html")
FINDINGS_FIGURE = Template("results/figures/findings.png")
SUMMARY = Template("results/summary.md")


def sharded(path: Template | str, shards: int) -> str:
    """A sample or reward file in its per-shard form when there are several shards (a/b.parquet ->
    a/b/shard{shard}.parquet, :data:`SHARD`), itself otherwise."""
    root, extension = os.path.splitext(str(path))
    return f"{root}/shard{{shard}}{extension}" if shards > 1 else str(path)


def log_file(rule: str, output: Template | str = "", name: str | None = None) -> str:
    """A rule's log: ``logs/{rule}/{stem}.log``, the stem being the wildcards of ``output`` joined by "_" after
    the replicate prefix (``{replicate}{policy}_{setting}``), or ``name`` for an output with no other wildcard."""
    return f"logs/{rule}/{stem(output, name)}.log"


def benchmark_file(rule: str, output: Template | str = "", name: str | None = None, **values: object) -> str:
    """A rule's benchmark (Snakemake's time and memory of a job): ``logs/benchmarks/{rule}/{stem}.tsv``, with the
    wildcards in ``values`` filled in."""
    path = Template(f"logs/benchmarks/{rule}/{stem(output, name)}.tsv")
    return path(**values)


def stem(output: Template | str, name: str | None = None) -> str:
    """The name a job's log and benchmark take from its output's wildcards after the replicate prefix, or
    ``name`` where the output has no other wildcard (a table, a study's one file per replicate)."""
    wildcards = WILDCARD.findall(str(output))
    prefix = "{replicate}" if "replicate" in wildcards else ""
    joined = "_".join(f"{{{w}}}" for w in wildcards if w != "replicate")
    if not joined and name is None:
        raise ValueError(f"{output}: a log of an output without wildcards needs a name")
    return prefix + (joined or name)
