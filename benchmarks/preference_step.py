"""One training step of each preference method against RRHF's, and against TRL's own DPOTrainer step.

Every case trains the same LLaMA-style policy on the same pairs (``--queries`` prompts, each with a chosen and
a rejected reply of about ``--reply-words`` words: K = 2 for RRHF too, so every case sees the same tokens), in
its own process, and reports seconds per optimiser step (the median of ``--steps`` steps after one warm-up) and
the peak memory the steps added over the process after loading the model and its data: peak resident set size
on the CPU, torch's peak allocation on a GPU.

- RRHF, DPO, R-DPO, IPO, SLiC, SimPO, KTO, ORPO: this project's step (rrhf.studies.preference_methods.trainer and
  rrhf.training.ranking, prompts packed once per example, rho's log-probabilities precomputed and carried in
  the batch, AdamW);
- TRL DPO: trl.DPOTrainer with ``precompute_ref_log_probs=True`` (no reference model held while training, as
  here), ``loss_type=["sigmoid"]``, the same batch size and learning rate; its step time from its own
  callbacks.

Ratios are printed against RRHF's step (memory) and, for DPO, ours over TRL's (time and memory):

    .venv/bin/python benchmarks/preference_step.py [--layers 4 --hidden 256] [--queries 8] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

HYPER = {"DPO": {"beta": 0.1}, "R-DPO": {"beta": 0.1, "length_weight": 0.01}, "IPO": {"beta": 0.1},
         "SLiC": {"beta": 1.0, "nll_weight": 0.1}, "SimPO": {"beta": 2.0, "gamma": 1.0},
         "KTO": {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0}, "ORPO": {"odds_ratio_weight": 0.1}}
LEARNING_RATE = 1e-5


def pairs(folder: Path, queries: int, reply_words: int):
    """The benchmark's pairs (prompt, chosen, rejected) from the synthetic data, replies padded to length."""
    from rrhf.io import read_parquet

    frame = read_parquet(folder / "train.parquet", ["prompt", "chosen", "rejected"]).head(queries)

    def longer(text: str) -> str:
        words = text.split()
        return " ".join((words * (reply_words // max(1, len(words)) + 1))[:reply_words])

    return [(row.prompt, longer(row.chosen), longer(row.rejected)) for row in frame.itertuples()]


def our_case(method: str, folder: Path, queries: int, reply_words: int, steps: int) -> dict:
    """Seconds per step and the peak memory added by ``steps`` + 1 steps of our ``method`` (or "RRHF")."""
    import pandas as pd
    import torch
    from memory_rrhf_vs_ppo import peak_memory_mb

    from rrhf.batching.query_batches import build_examples, query_collator
    from rrhf.models.loading import load_causal_lm
    from rrhf.studies.preference_methods.examples import method_examples
    from rrhf.studies.preference_methods.reference_logprobs import sequence_logprobs
    from rrhf.studies.preference_methods.trainer import METHODS, make_method_loss
    from rrhf.training.ranking import make_rrhf_loss

    model, tokenizer = load_causal_lm(str(folder / "policy"))
    rows = [(f"p{i}", prompt, k, reply, reward) for i, (prompt, chosen, rejected) in
            enumerate(pairs(folder, queries, reply_words))
            for k, reply, reward in ((0, chosen, 1.0), (1, rejected, 0.0))]
    scored = pd.DataFrame(rows, columns=["prompt_id", "prompt", "response_index", "response", "reward"])
    frame = scored if method in ("RRHF",) or METHODS[method].data == "pairs" else method_examples(
        scored, "labels", "best_worst", "prompt_mean")
    collate = query_collator(model, tokenizer, 1 << 20, "auto", "rrhf.prompt_sharing", f"{method} step")
    examples = build_examples(frame, tokenizer, 512)
    sums, _ = sequence_logprobs(model, collate, examples, len(examples))
    for example, values in zip(examples, sums):
        example.references = values
    loss_fn = make_rrhf_loss(1.0, 1.0, "token_mean") if method == "RRHF" else make_method_loss(method, HYPER[method])
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    model.train()
    baseline, times = peak_memory_mb(), []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss, _ = loss_fn(model, collate(examples))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times[1:]), "memory_mb": peak_memory_mb() - baseline,
            "tokens": sum(len(e.prompt) + sum(len(r) for r in e.responses) for e in examples)}


def trl_case(folder: Path, queries: int, reply_words: int, steps: int) -> dict:
    """The same for TRL's DPOTrainer (precomputed reference log-probabilities, sigmoid loss)."""
    from datasets import Dataset
    from memory_rrhf_vs_ppo import peak_memory_mb
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    model = AutoModelForCausalLM.from_pretrained(folder / "policy")
    tokenizer = AutoTokenizer.from_pretrained(folder / "policy")
    prompts, chosen, rejected = zip(*pairs(folder, queries, reply_words))
    data = Dataset.from_dict({"prompt": list(prompts), "chosen": list(chosen), "rejected": list(rejected)})
    times, marks = [], {}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            marks["start"] = time.perf_counter()
            marks.setdefault("baseline", peak_memory_mb())

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - marks["start"])

    with tempfile.TemporaryDirectory() as output:
        args = DPOConfig(output_dir=output, per_device_train_batch_size=queries, max_steps=steps + 1,
                         learning_rate=LEARNING_RATE, lr_scheduler_type="constant", warmup_steps=0, use_cpu=True,
                         bf16=False, gradient_checkpointing=False, report_to="none", save_strategy="no",
                         logging_steps=1000, loss_type=["sigmoid"], beta=0.1, max_length=512,
                         precompute_ref_log_probs=True, dataloader_num_workers=0, disable_tqdm=True)
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data, processing_class=tokenizer,
                             callbacks=[StepTimer()])
        trainer.train()
    return {"seconds": statistics.median(times[1:]), "memory_mb": peak_memory_mb() - marks["baseline"]}


def measure(case: str, folder: str, queries: int, reply_words: int, steps: int, queue) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCHMARK_THREADS", "1")))
    torch.manual_seed(0)
    if case == "TRL DPO":
        queue.put(trl_case(Path(folder), queries, reply_words, steps))
    else:
        queue.put(our_case(case, Path(folder), queries, reply_words, steps))


def main() -> None:
    from memory_rrhf_vs_ppo import build_models, in_fresh_process

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4, help="transformer blocks of the policy")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the policy")
    parser.add_argument("--queries", type=int, default=8, help="pairs per step (TRL's batch size too)")
    parser.add_argument("--reply-words", type=int, default=48, help="words per reply")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up")
    args = parser.parse_args()
    cases = ["RRHF", *HYPER, "TRL DPO"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_models(folder, args.layers, args.hidden)
        results = {case: in_fresh_process(measure, case, str(folder), args.queries, args.reply_words, args.steps)
                   for case in cases}
    from hh_workload import machine

    print(machine("cpu"))
    print(f"policy LLaMA-style {args.layers} x {args.hidden}; {args.queries} pairs per step, ~{args.reply_words}-word "
          f"replies; median of {args.steps} steps after a warm-up; memory: peak resident set added by the steps")
    rrhf = results["RRHF"]
    for case in cases:
        result = results[case]
        print(f"{case:8s} {result['seconds'] * 1000:8.1f} ms/step  {result['memory_mb']:8.1f} MB  "
              f"memory {result['memory_mb'] / max(rrhf['memory_mb'], 1e-9):5.2f} x RRHF  "
              f"time {result['seconds'] / rrhf['seconds']:5.2f} x RRHF")
    ours, trl = results["DPO"], results["TRL DPO"]
    print(f"DPO, ours over TRL's DPOTrainer: time {ours['seconds'] / trl['seconds']:.2f}, "
          f"memory {ours['memory_mb'] / max(trl['memory_mb'], 1e-9):.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
