"""The over-optimisation study's plan: which names it accepts and which files it reads, in each replicate (the
checks' messages are in tests/plan/test_plan.py, test_each_check_names_its_key)."""

from plan_helpers import TINY, study_problems, tiny_plan


def test_the_overoptimisation_study_accepts_every_kind_it_names():
    every = {"policy": "LLaMA", "along_training": ["PPO", "PPO-noKL", "OP-1", "OP-3+KL"],
             "points": ["none", "PPO-noKL", "BP-norank", "IP-1", "IP-4", "OP-2+KL"]}
    assert study_problems(tiny_plan(lambda c: c.update(overoptimisation=every)), "overoptimisation") == []
    assert study_problems(tiny_plan(lambda c: c.pop("overoptimisation")), "overoptimisation") == []
    several = study_problems(tiny_plan(lambda c: c.update(overoptimisation={
        "policy": "Vicuna", "along_training": ["none", "best-of-2"], "points": ["best-of-2"]})), "overoptimisation")
    assert [problem.split(":")[0] for problem in several] == [
        "overoptimisation.policy", "overoptimisation.along_training[0]", "overoptimisation.along_training[1]",
        "overoptimisation.points[0]"]


def test_the_overoptimisation_studys_files_in_each_replicate():
    plan = tiny_plan()
    files = plan.studies["overoptimisation"].inputs(0)
    assert files["samples"] == "results/eval/instruct/best-of-32/samples.parquet"  # best-of-max(best_of)
    assert files["curves"] == {"PPO": "results/models/instruct/PPO/train_log.parquet",
                               "PPO-noKL": "results/models/instruct/PPO-noKL/train_log.parquet",
                               "OP-2": "results/models/instruct/OP-2/online_samples.parquet",
                               "OP-2+KL": "results/models/instruct/OP-2+KL/online_samples.parquet"}
    assert list(files["points"]) == TINY["overoptimisation"]["points"]
    assert files["points"]["IP-2"] == "results/eval/instruct/IP-2/metrics.json"
    assert all(path == f"results/eval/instruct/{name}/metrics.json" for name, path in files["points"].items())
    # every stage re-seeded (the default): all under the replicate's folder
    again = plan.studies["overoptimisation"].inputs(1)
    assert again["samples"] == "results/replicate1/eval/instruct/best-of-32/samples.parquet"
    assert again["curves"]["OP-2"] == "results/replicate1/models/instruct/OP-2/online_samples.parquet"
    assert again["points"]["PPO-noKL"] == "results/replicate1/eval/instruct/PPO-noKL/metrics.json"
    assert plan.studies["overoptimisation"].inputs("replicate1/") == again
    # Only training re-seeded: best-of-n samples (and the untrained policy's greedy replies) are shared.
    study = {"policy": "LLaMA", "best_of": [4, 1, 2], "along_training": ["PPO"], "points": ["none", "IP-1"]}
    shared = tiny_plan(lambda c: c.update(reseeded_stages=["training"], overoptimisation=study))
    assert shared.studies["overoptimisation"].inputs(1) == {
        "samples": "results/eval/base/best-of-4/samples.parquet",
        "curves": {"PPO": "results/replicate1/models/base/PPO/train_log.parquet"},
        "points": {"none": "results/eval/base/none/metrics.json",
                   "IP-1": "results/replicate1/eval/base/DP/metrics.json"}}  # IP-1 is DP's model
    without = tiny_plan(lambda c: c.pop("overoptimisation"))
    assert without.studies["overoptimisation"] is None
