"""Does the tiny default behave like a small version of the paper's experiment? The checks, with their figures.

The workflow target ``results/checks/tiny_science.txt`` (rule tiny_science_checks, after the tables) writes
them; ``python -m rrhf.report.science_checks [--results results] [--policy instruct]`` prints them for a
finished run. They read the evaluations, Table 6 and Table 7 and the reward model's agreement with gold, and
give, each with its numbers and PASS or FAIL:
- the reward model: held-out accuracy on gold-ordered pairs (>= 0.85), Spearman
  of reward and gold on the policy's DP training set (>= 0.7);
- RRHF-DP against the untrained policy: reward and gold reward up by more than
  3 standard errors, perplexity at most 1.5x (differences are paired over the
  same test prompts);
- DP and BP beat P in gold reward, BP beats BP-norank;
- no trained policy repeats itself more than 1.5x the dataset's chosen replies;
- PPO raises the reward over the untrained policy (> 2 standard errors); its
  gold reward is printed beside it, and called reward gaming when it falls by
  more than 2 standard errors while the reward rises;
- iterated RRHF: IP-2 and IP-3 against the iteration before (IP-1 is DP), and
  the training sets' mean reward rising from one iteration to the next;
- online RRHF: each OP-k[+KL] row against DP (reward, gold, perplexity, the
  same gaming verdict), and OP-k+KL against OP-k with the KL its samples had
  from rho at the end of training.
The command exits 1 when any check fails; the target records the verdicts and succeeds. These are fixed
thresholds on one run, not intervals over replicates: they say what one run shows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rrhf.io import atomic_path, setup_logging


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def paired_difference(a: Path, b: Path, key: str) -> tuple[float, float]:
    """(mean of a - b, that mean in standard errors) for metric ``key`` of two evaluations of the same test
    prompts (their generations.parquet), paired by prompt."""
    import pandas as pd

    first = pd.read_parquet(a / "generations.parquet").set_index("prompt_id")[key]
    second = pd.read_parquet(b / "generations.parquet").set_index("prompt_id")[key]
    difference = (first - second.loc[first.index]).astype(float)
    sem = difference.std(ddof=1) / math.sqrt(len(difference))
    if not sem:  # the same on every prompt (e.g. two rows that trained identically): no difference at all
        return float(difference.mean()), 0.0 if difference.mean() == 0 else math.copysign(math.inf, difference.mean())
    return float(difference.mean()), float(difference.mean() / sem)


def verdict(policy: Path, metrics: dict, setting: str, baseline: str) -> str:
    """One line: paired reward and gold differences of two rows, their perplexities, and whether it is gaming."""
    (reward, reward_sems), (gold, gold_sems) = (paired_difference(policy / setting, policy / baseline, key)
                                                for key in ("reward", "gold_reward"))
    ppl = {name: metrics[name]["ppl"] for name in (setting, baseline)}
    gaming = reward_sems > 2 and gold_sems < -2
    return (f"{setting} - {baseline}: reward {reward:+.3f} ({reward_sems:+.1f} standard errors), gold {gold:+.3f} "
            f"({gold_sems:+.1f}), PPL {ppl[setting]:.2f} against {ppl[baseline]:.2f}: "
            f"{'the proxy rises while gold falls: reward gaming' if gaming else 'no reward gaming'}")


def resampling_story(results: Path, policy: Path, metrics: dict, out: list[str]) -> list[tuple[str, bool]]:
    """The IP-n and OP-k rows against the rows they grow from, as lines added to ``out``; return the checks on
    them."""
    import pandas as pd

    checks = []
    iterations = sorted(int(name[3:]) for name in metrics if name.startswith("IP-") and name[3:].isdigit())
    if iterations:
        out.append("")
        scored = results / "scored" / policy.name
        means = {1: float(pd.read_parquet(scored / "DP.parquet")["reward"].mean())}
        for n in iterations:
            if n > 1:
                means[n] = float(pd.read_parquet(scored / f"IP-{n}.parquet")["reward"].mean())
                previous = "DP" if n == 2 else f"IP-{n - 1}"
                out.append(verdict(policy, metrics, f"IP-{n}", previous))
        out.append("training-set mean reward by iteration: " + ", ".join(f"IP-{n} {m:.3f}" for n, m in means.items()))
        rising = all(means[a] < means[b] for a, b in zip(means, list(means)[1:]))
        checks.append(("each iteration's samples score higher than the last's (IP-n trains on better replies)",
                       rising))
    online = sorted(name for name in metrics if name.startswith("OP-"))
    if online:
        out.append("")
    for name in online:
        out.append(verdict(policy, metrics, name, "DP"))
        model = json.loads((results / "models" / policy.name / name / "metrics.json").read_text())
        kl = (f", KL from rho {model['sample_kl_last_round']:.3f} at the end (kl_coef {model['kl_coef']})"
              if name.endswith("+KL") else "")
        out.append(f"  {model['rounds']} sampling rounds; their samples' reward "
                   f"{model['sample_reward_first_round']:.3f} -> {model['sample_reward_last_round']:.3f}, gold "
                   f"{model['sample_gold_reward_first_round']:.3f} -> {model['sample_gold_reward_last_round']:.3f}{kl}")
        if name.endswith("+KL") and name[: -len("+KL")] in metrics:
            out.append("  " + verdict(policy, metrics, name, name[: -len("+KL")]))
    return checks


def science_checks(results: Path, policy_name: str) -> tuple[list[str], list[tuple[str, bool]]]:
    """(the report's lines, the checks as (text, passed)) of a finished run under ``results``, for the policy
    ``policy_name`` (the models entry of the Alpaca role)."""
    out: list[str] = []
    evaluations = Path(results) / "eval"
    policy = evaluations / policy_name
    checks: list[tuple[str, bool]] = []
    agreement = load(evaluations / "reward_model" / "metrics.json")
    held_out = agreement["held_out"]
    dp_set = agreement["training_sets"][f"{policy_name}/DP"]
    out.append(f"reward model: held-out accuracy {held_out['test_accuracy']:.3f} on labels, "
               f"{held_out['test_gold_accuracy']:.3f} on gold-ordered pairs ({held_out['test_gold_pairs']}); "
               f"labels agree with gold on {held_out['test_label_gold_agreement']:.3f}")
    out.append(f"  {policy_name}/DP training set: Spearman(reward, gold) {dp_set['spearman']:.3f}, same-prompt pairs "
               f"ordered like gold {dp_set['within_prompt_pair_accuracy']:.3f}; gold of the best-by-reward reply "
               f"{dp_set['gold_of_best_by_reward']:.3f} (best by gold {dp_set['gold_of_best_by_gold']:.3f})")
    checks.append(("reward model held-out gold-ordered accuracy >= 0.85", held_out["test_gold_accuracy"] >= 0.85))
    checks.append(("Spearman(reward, gold) on the DP training set >= 0.7", dp_set["spearman"] >= 0.7))

    metrics = {path.parent.name: load(path) for path in sorted(policy.glob("*/metrics.json"))}
    chosen = load(evaluations / "dataset" / "chosen" / "metrics.json")
    out.append("")
    out.append(f"{'setting':<12} {'reward':>16} {'gold':>16} {'ppl':>7} {'repetition':>10} {'words':>6}")
    for name, m in [("dataset:chosen", chosen), *metrics.items()]:
        ppl = "-" if m["ppl"] is None else f"{m['ppl']:.2f}"  # best-of-n reports none
        out.append(f"{name:<12} {m['reward_mean']:>8.3f} ± {m['reward_sem']:.3f} {m['gold_reward_mean']:>8.3f} ± "
                   f"{m['gold_reward_sem']:.3f} {ppl:>7} {m['repetition']:>10.4f} {m['response_words']:>6.1f}")
    none, dp = metrics["none"], metrics["DP"]
    out.append("")
    for key in ("reward", "gold_reward"):
        difference, sems = paired_difference(policy / "DP", policy / "none", key)
        out.append(f"DP - untrained, {key}: {difference:+.3f} ({sems:.1f} standard errors)")
        checks.append((f"RRHF-DP raises {key} by > 3 standard errors", sems > 3))
    checks.append((f"RRHF-DP perplexity {dp['ppl']:.2f} <= 1.5 x untrained {none['ppl']:.2f}",
                   dp["ppl"] <= 1.5 * none["ppl"]))
    for better, worse in (("DP", "P"), ("BP", "P"), ("BP", "BP-norank")):
        _, sems = paired_difference(policy / better, policy / worse, "gold_reward")
        checks.append((f"{better} beats {worse} in gold reward ({sems:+.1f} standard errors)", sems > 0))
    if "PPO" in metrics:
        (reward, reward_sems), (gold, gold_sems) = (paired_difference(policy / "PPO", policy / "none", key)
                                                    for key in ("reward", "gold_reward"))
        gaming = reward_sems > 2 and gold_sems < -2
        out.append(f"PPO - untrained: reward {reward:+.3f} ({reward_sems:.1f} standard errors), gold {gold:+.3f} "
                   f"({gold_sems:.1f}): " + ("the proxy rises while gold falls, PPO games the reward model" if gaming
                                             else "no reward gaming"))
        checks.append((f"PPO raises the reward over the untrained policy ({reward_sems:+.1f} standard errors)",
                       reward_sems > 2))
    checks += resampling_story(Path(results), policy, metrics, out)
    limit = 1.5 * chosen["repetition"]
    for name, m in metrics.items():
        if name != "none":
            checks.append((f"{name} repetition {m['repetition']:.4f} <= 1.5 x chosen's ({limit:.4f})",
                           m["repetition"] <= limit))
    out.append("")
    out += [f"{'PASS' if passed else 'FAIL'}  {text}" for text, passed in checks]
    return out, checks


def write_science_checks(results: str, policy: str, output: str, log_path: str | None = None) -> bool:
    """Stage entry point: the checks of a finished run as a text file (atomically); whether all passed."""
    lines, checks = science_checks(Path(results), policy)
    with atomic_path(output) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    passed = all(ok for _, ok in checks)
    setup_logging(log_path).info("%d of %d checks pass: %s", sum(ok for _, ok in checks), len(checks), output)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rrhf.report.science_checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--policy", default="instruct", help="models entry of the Alpaca role")
    args = parser.parse_args(argv)
    lines, checks = science_checks(args.results, args.policy)
    print("\n".join(lines))
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
