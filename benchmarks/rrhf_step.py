"""Time of one RRHF training step (forward + backward) three ways, on real HH queries with K replies each.

Usage:

    .venv/bin/python benchmarks/rrhf_step.py [--hh FILE] [--steps 3] [--layers 12 --hidden 768 --heads 12]
    .venv/bin/python benchmarks/rrhf_step.py --model FOLDER [--queries 2 --steps 1] [--ways c b]

For the same batches of ``--queries`` queries (K = ``--responses`` replies, prompt + reply cut to
``--max-length`` tokens, hh_workload.py) and a randomly initialised LLaMA-style policy (GPT-2-small width
by default) or, with ``--model FOLDER``, a real one (a transformers model folder such as the import stage's
SmolLM2-135M-Instruct, in float32, its queries encoded by its own tokenizer in its own prompt format), it
prints: the machine; the data, the model's shape (layers, width, heads and key/value heads, MLP width,
vocabulary, parameters) and the matmul peak; then per way the tokens its forward passes process (padding
included), seconds per step, and throughput as a fraction of this device's matmul peak measured in the same
run, counting the FLOPs it runs ("of peak") and counting only the work needed, each prompt once ("useful"):

  (a) each query's K replies padded to its longest, each with its prompt, one forward per query, logits
      and a full-vocabulary log-softmax (cloned) on every position: the official RRHF code's way
      (GanjinZero/RRHF, train.py, RRHFTrainer.compute_loss);
  (b) the batch's sequences sorted by length and run in chunks of similar length, logits on every
      position (this project before prompt sharing);
  (b') as (b), logits only where a token is scored (``rrhf.prompt_sharing: separate`` now);
  (c') each prompt once, packed with its replies (rrhf.prompt_sharing), logits on every position;
  (c) as (c'), logits only where a token is scored (``rrhf.prompt_sharing: auto``, the default).

``--ways`` picks the ways that run (default all; (a) is slow at 135M on a CPU: ``--ways c b``). Then one line
for (c), one RRHF step with each prompt computed once, as a fraction of the matmul peak; the time ratios of the
ways that ran (c/a, c/b, c/b', b/a); and how far the ways' summed losses differ. Without ``--hh`` it reads the
HH harmless-base test split where the project's test data lies, else synthetic pairs.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import hh_workload as workload
import torch

WAYS = [("a", "padded per query, full log-softmax (official)", dict(packed=False, chunked=False, keep=False)),
        ("b", "length-sorted chunks, full logits (before)", dict(packed=False, chunked=True, keep=False)),
        ("b'", "length-sorted chunks, scored logits", dict(packed=False, chunked=True, keep=True)),
        ("c'", "shared prompt, full logits", dict(packed=True, chunked=True, keep=False)),
        ("c", "shared prompt, scored logits (default)", dict(packed=True, chunked=True, keep=True))]


def collate_step(examples, way: dict, budget: int, pad_token_id: int = 0) -> list[dict]:
    """The collated forward inputs of one step: one batch, or (a) one per query."""
    from rrhf.batching.query_batches import collate_queries

    if not way["chunked"]:
        return [collate_queries([e], pad_token_id, 1 << 30, float("inf"), packed=False,
                                logits_on_scored_only=way["keep"]) for e in examples]
    return [collate_queries(examples, pad_token_id, budget, packed=way["packed"], logits_on_scored_only=way["keep"])]


class OfficialLogits(torch.nn.Module):
    """``model`` with the official code's logits: a log-softmax over the whole vocabulary at every position of
    the padded (K, L) batch, cloned (GanjinZero/RRHF, train.py). The project's loss then gathers them as it
    gathers any logits (a log-softmax of log-probabilities changes nothing)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **inputs):
        return SimpleNamespace(logits=torch.log_softmax(self.model(**inputs).logits, dim=-1).clone())


def run_step(model, batches: list[dict], loss_fn, device: str, autocast: bool) -> tuple[float, float]:
    """(seconds, loss summed over queries) of forward + backward over ``batches`` (gradients zeroed after)."""
    workload.synchronize(device)
    start = time.perf_counter()
    total = 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
            loss, _ = loss_fn(model, batch)
        loss.backward()
        total += float(loss.detach()) * int(batch["shape"][0])  # the loss is a mean over the batch's queries
    workload.synchronize(device)
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    workload.add_workload_arguments(parser, queries=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per way (the same batches for all)")
    parser.add_argument("--vocabulary", type=int, default=50257,
                        help="LM head rows of the random model (GPT-2's by default; with --model its own)")
    parser.add_argument("--ways", nargs="+", choices=[key for key, _, _ in WAYS], default=[key for key, _, _ in WAYS],
                        help="the ways to run (default all)")
    parser.add_argument("--max-tokens-per-forward", type=int, default=4096)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (mixed precision), as on GPUs")
    args = parser.parse_args()

    from rrhf.training.ranking import make_rrhf_loss

    frame, origin = workload.load_pairs(args.hh, 400)
    model, tokenizer, shape, described = workload.workload_model(args, "lm", frame, torch.float32, args.vocabulary)
    model.train()
    ways = [way for way in WAYS if way[0] in args.ways]
    examples = workload.hh_queries(frame, tokenizer, args.steps * args.queries, args.responses, args.max_length)
    steps = [examples[i:i + args.queries] for i in range(0, len(examples), args.queries)]
    pad = tokenizer.pad_token_id
    peak = workload.matmul_peak(args.device, torch.bfloat16 if args.bf16 else torch.float32)
    loss_fn = make_rrhf_loss(1.0, 1.0, "sum")
    official = OfficialLogits(model)
    print(workload.machine(args.device))
    print(f"{origin}; {len(steps)} steps of {args.queries} queries x {args.responses} replies, cut to "
          f"{args.max_length} tokens; {described}; {args.device}{' bf16 autocast' if args.bf16 else ' fp32'}; "
          f"matmul peak {peak / 1e9:,.0f} GFLOP/s")
    distinct = sum(workload.distinct_tokens(step) for step in steps)
    response_tokens = sum(len(r) for e in examples for r in e.responses)
    useful = 3 * shape.forward_flops(distinct, 0, response_tokens)
    print(f"distinct tokens per step {distinct / len(steps):,.0f} (each prompt once), "
          f"response tokens {response_tokens / len(steps):,.0f}")
    run_step(model, collate_step(steps[0], ways[-1][2], args.max_tokens_per_forward, pad), loss_fn, args.device,
             args.bf16)  # warm-up
    totals = {key: [0, 0.0, 0.0, 0.0] for key, _, _ in ways}  # tokens, seconds, flops, summed loss
    for step in steps:  # the ways take turns on each batch, so drift in the machine's speed hits all alike
        for key, _, way in ways:
            batches = collate_step(step, way, args.max_tokens_per_forward, pad)
            for batch in batches:
                tokens, attended, head = workload.processed(batch, shape)
                totals[key][0] += tokens
                totals[key][2] += 3 * shape.forward_flops(tokens, attended, head)
            seconds, loss = run_step(official if key == "a" else model, batches, loss_fn, args.device, args.bf16)
            totals[key][1] += seconds
            totals[key][3] += loss
    n = len(steps)
    peak = max(peak, workload.matmul_peak(args.device, torch.bfloat16 if args.bf16 else torch.float32))
    print(f"matmul peak, the larger of before and after the steps: {peak / 1e9:,.0f} GFLOP/s")
    workload.header("s/step")
    for key, label, _ in ways:
        tokens, seconds, flops, _ = totals[key]
        workload.report(f"({key}) {label}", tokens // n, seconds / n, flops / n, useful / n, peak)
    if "c" in totals:
        tokens, seconds, flops, _ = totals["c"]
        print(f"one RRHF step, each prompt once (c): {seconds / n:.3f} s, {flops / seconds / 1e9:,.1f} GFLOP/s = "
              f"{flops / seconds / peak:.1%} of the matmul peak ({useful / seconds / peak:.1%} counting only the "
              f"work needed)")
    ratios = [f"{x}/{y} {totals[x][1] / totals[y][1]:.2f}" for x, y in (("c", "a"), ("c", "b"), ("c", "b'"), ("b", "a"))
              if x in totals and y in totals]
    if ratios:
        print("   ".join(ratios))
    losses = [totals[key][3] for key in totals]
    print(f"the ways' summed losses differ by at most {max(losses) - min(losses):.2g} (of {losses[0]:.6g})")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
