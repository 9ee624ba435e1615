"""Time of reward scoring (forward only) three ways, on real HH queries with K replies each.

Usage:

    .venv/bin/python benchmarks/score_responses.py [--hh FILE] [--queries 32] [--layers 12 --hidden 768 --heads 12]
    .venv/bin/python benchmarks/score_responses.py --model FOLDER [--queries 4]

A randomly initialised LLaMA-style reward model (a one-label sequence classifier, GPT-2-small width by
default) or, with ``--model FOLDER``, a real backbone with a new one-label head
(``AutoModelForSequenceClassification.from_pretrained(FOLDER, num_labels=1)``, seeded; its queries encoded by
its own tokenizer in its own prompt format) scores ``--queries`` queries x K = ``--responses`` replies
(hh_workload.py) in batches of ``--batch-size`` replies. Printed: the machine; the data, the model's shape
and the matmul peak; then per way, as benchmarks/rrhf_step.py does: tokens processed, seconds for all
replies, and throughput as a fraction of the matmul peak measured in the same run, counting the FLOPs run
and only the work needed (each prompt once):

  (a) replies in their input order, each with its prompt, batches padded to their longest;
  (b) sorted by length first (``scoring.prompt_sharing: separate``);
  (c) each prompt once, its replies packed after it (``scoring.prompt_sharing: auto``, the default).

Then the time ratios c/a and c/b, and the largest difference between (c)'s rewards and (b)'s.
"""

from __future__ import annotations

import argparse
import time

import hh_workload as workload
import torch


def separate_rows(examples, sort: bool, batch_size: int) -> list[list[list[int]]]:
    """Batches of prompt + reply sequences, in input order or sorted by length."""
    sequences = [s for e in examples for s in e.sequences]
    if sort:
        sequences = sorted(sequences, key=len)
    return [sequences[i:i + batch_size] for i in range(0, len(sequences), batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    workload.add_workload_arguments(parser, queries=32)
    parser.add_argument("--batch-size", type=int, default=32, help="replies per forward")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()

    from rrhf.padding import pad_batch
    from rrhf.scoring.packed_rewards import packed_scores, reward_reader

    dtype = getattr(torch, args.dtype)
    frame, origin = workload.load_pairs(args.hh, 400)
    model, tokenizer, shape, described = workload.workload_model(args, "reward", frame, dtype)
    model.eval()
    examples = workload.hh_queries(frame, tokenizer, args.queries, args.responses, args.max_length)
    peak = workload.matmul_peak(args.device, dtype)
    print(workload.machine(args.device))
    print(f"{origin}; {args.queries} queries x {args.responses} replies, cut to {args.max_length} tokens, "
          f"{args.batch_size} replies per forward; {described}; {args.device} "
          f"{args.dtype}; matmul peak {peak / 1e9:,.0f} GFLOP/s")
    useful = shape.forward_flops(workload.distinct_tokens(examples), 0, 0)
    encoded = [(s, len(e.prompt)) for e in examples for s in e.sequences]

    @torch.no_grad()
    def separate(batches):
        rewards = []
        for rows in batches:
            ids, mask = (t.to(args.device) for t in pad_batch(rows, tokenizer.pad_token_id))
            rewards += model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
        return rewards

    @torch.no_grad()
    def packed():
        return packed_scores(model, reward_reader(model), encoded, tokenizer.pad_token_id, args.batch_size)

    def timed(run):
        workload.synchronize(args.device)
        start = time.perf_counter()
        result = run()
        workload.synchronize(args.device)
        return time.perf_counter() - start, result

    shapes: list[tuple[int, int]] = []  # (rows, length) of every forward pass of the backbone
    model.base_model.register_forward_pre_hook(lambda module, args, kwargs: shapes.append(
        tuple((kwargs["input_ids"] if "input_ids" in kwargs else args[0]).shape)), with_kwargs=True)
    timed(packed)  # warm-up
    results, rows = {}, []
    for key, label, run in (("a", "input order, padded batches",
                             lambda: separate(separate_rows(examples, False, args.batch_size))),
                            ("b", "sorted by length", lambda: separate(separate_rows(examples, True, args.batch_size))),
                            ("c", "shared prompt (default)", packed)):
        shapes.clear()
        seconds, rewards = timed(run)
        results[key] = (seconds, rewards)
        tokens = sum(n * length for n, length in shapes)
        flops = shape.forward_flops(tokens, sum(n * length * length for n, length in shapes), 0)
        rows.append((f"({key}) {label}", tokens, seconds, flops))
    peak = max(peak, workload.matmul_peak(args.device, dtype))
    print(f"matmul peak, the larger of before and after the runs: {peak / 1e9:,.0f} GFLOP/s")
    workload.header("seconds")
    for label, tokens, seconds, flops in rows:
        workload.report(label, tokens, seconds, flops, useful, peak)
    gap = max(abs(x - y) for x, y in zip(results["c"][1], results["a"][1]))
    print(f"c/a {results['c'][0] / results['a'][0]:.2f}   c/b {results['c'][0] / results['b'][0]:.2f}   "
          f"largest |reward (c) - reward (a)| {gap:.2g}")


if __name__ == "__main__":
    main()
