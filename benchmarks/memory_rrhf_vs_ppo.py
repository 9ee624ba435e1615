"""Peak memory of one RRHF step (K = 6) against one PPO iteration, at the same policy size.

The paper's claim: RRHF needs 1-2 models in memory where PPO needs 4 (policy,
value model, reference, reward model). Each case runs in its own process, with
the library's own code (rrhf.training.loop.train_model with the RRHF loss;
rrhf.training.ppo.train_ppo for one iteration: rollout, scoring, then update), and
reports the peak memory it added over the process after imports: peak resident
set size on the CPU, torch's peak allocation on a GPU. PPO runs twice: with a
full frozen reference, and with the shared trunk (num_layers_unfrozen, trlX's
hydra heads), where only the top layers train and the reference copies just
those.

    python benchmarks/memory_rrhf_vs_ppo.py [--layers 8 --hidden 512 --unfrozen 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

K = 6  # responses per query in the RRHF step (the paper's DP/BP settings have 4 to 6)


def build_models(folder: Path, layers: int, hidden: int) -> None:
    """A tokenizer, a LLaMA-style policy and a reward model of the same size, saved in ``folder``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from rrhf.data.preference_pairs import normalise_pairs
    from rrhf.data.synthetic_hh import generate_pairs
    from rrhf.io import write_parquet
    from rrhf.models.tiny import new_causal_lm, train_tokenizer, transcripts

    frame, _ = normalise_pairs(generate_pairs(400, seed=0), origin="benchmark")
    write_parquet(frame, folder / "train.parquet", {"stage": "benchmark"})
    tokenizer = train_tokenizer(transcripts(frame), vocab_size=1024)
    policy = new_causal_lm(tokenizer, {"family": "llama", "n_layer": layers, "n_embd": hidden,
                                       "n_head": max(1, hidden // 64), "n_positions": 512}, seed=0)
    for name in ("policy", "reward"):
        tokenizer.save_pretrained(folder / name)
    policy.save_pretrained(folder / "policy")
    torch.manual_seed(0)
    reward = AutoModelForSequenceClassification.from_pretrained(folder / "policy", num_labels=1)
    reward.config.pad_token_id = tokenizer.pad_token_id
    reward.save_pretrained(folder / "reward")


def peak_memory_mb() -> float:
    """Peak memory so far in MB: torch's peak GPU allocation, or the process's peak resident set size."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB


def rrhf_step(folder: Path) -> None:
    """One RRHF optimiser step on one query with K responses of 64 tokens after a 64-token prompt."""
    import pandas as pd

    from rrhf.batching.query_batches import build_examples, query_collator
    from rrhf.config.blocks import Precision, Training
    from rrhf.io import read_parquet
    from rrhf.models.loading import load_causal_lm
    from rrhf.training.loop import train_model
    from rrhf.training.ranking import make_rrhf_loss

    model, tokenizer = load_causal_lm(str(folder / "policy"))
    frame = read_parquet(folder / "train.parquet", ["prompt_id", "prompt", "chosen"]).head(1)
    rows = [(0, frame["prompt"].iloc[0], k, " ".join([frame["chosen"].iloc[0]] * 8), float(k)) for k in range(K)]
    scored = pd.DataFrame(rows, columns=["prompt_id", "prompt", "response_index", "response", "reward"])
    examples = build_examples(scored, tokenizer, max_length=128)
    params = Training.with_defaults(dict(epochs=1, batch_size=1, learning_rate=1e-5, max_length=128))
    collate = query_collator(model, tokenizer, 1 << 20, "auto", "rrhf.prompt_sharing", "RRHF step")  # as trained
    train_model(model, examples, [e.length for e in examples], collate, make_rrhf_loss(1.0, 1.0, "token_mean"),
                params, Precision.with_defaults(), "rrhf step")


def ppo_iteration(folder: Path, unfrozen: int | None) -> None:
    """One PPO iteration: K rollouts of up to 64 tokens, scored, then one update on a minibatch of all K."""
    from rrhf.training.ppo import train_ppo

    ppo = {"num_rollouts": K, "chunk_size": K, "ppo_epochs": 1, "total_steps": 1, "num_layers_unfrozen": unfrozen,
           "gamma": 1.0, "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 1.0,
           "kl": {"controller": "fixed", "init_coef": 0.05}, "scale_reward": "running", "cliprange_reward": 10,
           "delta_reward": True, "generation": {"max_new_tokens": 64, "top_k": 0, "top_p": 1.0, "temperature": 1.0}}
    training = {"learning_rate": 1e-5, "batch_size": K, "max_length": 128, "lr_schedule": "constant"}
    with tempfile.TemporaryDirectory() as output:
        train_ppo(str(folder / "policy"), str(folder / "reward"), str(folder / "train.parquet"),
                  str(Path(output) / "model"), {**ppo, "training": training}, {},
                  {"limit": K, "seed": 0, "key": "data.train_prompts"}, {})


def measure(case: str, folder: str, unfrozen: int | None, queue) -> None:
    """Run one case in this (fresh) process and put its added peak memory on ``queue``."""
    import torch  # noqa: F401  imports count towards the baseline, not the case
    import transformers  # noqa: F401

    import rrhf.training.ppo  # noqa: F401
    import rrhf.training.rrhf  # noqa: F401

    torch.set_num_threads(1)
    baseline = peak_memory_mb()
    if case == "rrhf":
        rrhf_step(Path(folder))
    else:
        ppo_iteration(Path(folder), unfrozen)
    queue.put(peak_memory_mb() - baseline)


def in_fresh_process(target, *args):
    """``target(*args, queue)`` run in a new (spawned) process; what it puts on the queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def run_case(case: str, folder: Path, unfrozen: int | None = None) -> float:
    return in_fresh_process(measure, case, str(folder), unfrozen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8, help="transformer blocks of the policy")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size of the policy")
    parser.add_argument("--unfrozen", type=int, default=2, help="top layers PPO trains with the shared trunk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_models(folder, args.layers, args.hidden)
        import torch
        from transformers import AutoModelForCausalLM

        parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(folder / "policy").parameters())
        device = "cuda" if torch.cuda.is_available() else "cpu"
        results = {"rrhf_step_mb": run_case("rrhf", folder),
                   "ppo_iteration_full_reference_mb": run_case("ppo", folder, None),
                   "ppo_iteration_shared_trunk_mb": run_case("ppo", folder, args.unfrozen)}
    unit = "peak GPU allocation" if device == "cuda" else "peak resident memory"
    from hh_workload import machine

    print(machine(device))
    print(f"policy: LLaMA-style, {args.layers} layers x {args.hidden}, {parameters / 1e6:.1f}M parameters "
          f"({parameters * 4 / 2 ** 20:.0f} MB in float32); {unit} added by each case on {device}")
    print(f"RRHF, one step with K = {K}:                        {results['rrhf_step_mb']:8.0f} MB")
    print(f"PPO, one iteration, full frozen reference:          {results['ppo_iteration_full_reference_mb']:8.0f} MB"
          f"  ({results['ppo_iteration_full_reference_mb'] / results['rrhf_step_mb']:.2f} x RRHF)")
    print(f"PPO, one iteration, shared trunk (top {args.unfrozen} layers train): "
          f"{results['ppo_iteration_shared_trunk_mb']:8.0f} MB"
          f"  ({results['ppo_iteration_shared_trunk_mb'] / results['rrhf_step_mb']:.2f} x RRHF)")
    print(json.dumps({**results, "parameters": parameters, "device": device}))


if __name__ == "__main__":
    main()
