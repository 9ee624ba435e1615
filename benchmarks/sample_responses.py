"""Speed of sampling: the project's generate_responses against plain model.generate, top-p and greedy.

Usage:

    .venv/bin/python benchmarks/sample_responses.py [--model FOLDER] [--prompts 16] [--max-new-tokens 64]
        [--responses 4] [--batch-size 8] [--methods top_p greedy] [--repeats 1] [--hh FILE]

The first ``--prompts`` HH prompts (hh_workload.py: the harmless-base test split, else synthetic pairs) are
answered by a policy: with ``--model FOLDER`` a transformers model folder (e.g. the import stage's
SmolLM2-135M-Instruct) in float32 with its own tokenizer, reading the prompts in its own prompt format; without
it a randomly initialised LLaMA-style model of GPT-2-small width (12 x 768, 12 heads; ``--layers``,
``--hidden``, ``--heads``) with the BPE tokenizer trained on the HH file (``--tokenizer-vocabulary`` rows, its
LM head as wide), which rarely says EOS, so it runs to ``--max-new-tokens``. Each method runs two ways on the
same prompts:

- the project's ``rrhf.sampling.generation.generate_responses(model, tokenizer, prompts, method, ...)``: top-p
  with ``--responses`` samples per prompt (``--top-p``, ``--temperature``, top-k off: the config's sampler),
  greedy with one reply; prompts sorted by length, left-padded batches of ``--batch-size`` prompts, batch i
  seeded with ``--seed`` + i, replies decoded;
- plain ``model.generate(...)`` on the same batches encoded the same way (rrhf.sampling.generation's
  encode_prompts: left padding, the model's start token, the same prompt budget), with the same sampling
  parameters and the same seed per batch; its replies are decoded after the clock stops.

With ``--repeats R`` each way runs R times per method, the two taking turns going first, and the fastest run
counts (the same seeds give the same replies every time).

Printed: the machine; the prompts, sampling parameters, the model's shape and the matmul peak (fp32, measured
before and after the runs, the larger kept); then per method and way: the tokens generated (each reply's up to
and including its first EOS), seconds, tokens generated per second, and throughput as a fraction of the matmul
peak, counting the forward FLOPs that ran ("of peak": every row of every step, left padding, replies already
finished and each sample's own copy of its prompt included, each new token's attention over all the cached
positions) and only those needed ("useful": each prompt's prefill once, then each generated token once with
the KV cache, attending to its own prefix, the LM head on every generated token); last, per method, the
project's time and tokens per second against plain generate's, and whether the two gave the same replies.
"""

from __future__ import annotations

import argparse
import time

import hh_workload as workload
import torch


class Recorder:
    """Records, for FLOP counts, every forward pass of ``model`` (rows, new tokens, cached tokens, LM head
    tokens) and every ``model.generate`` call (output ids, prompt width, prompt lengths without padding)."""

    def __init__(self, model):
        self.forwards: list[tuple[int, int, int, int]] = []
        self.generated: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        model.register_forward_pre_hook(self.forward, with_kwargs=True)
        generate = model.generate

        def recording(*args, **kwargs):
            output = generate(*args, **kwargs)
            ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
            mask = kwargs.get("attention_mask")
            lengths = mask.sum(1) if mask is not None else torch.full((len(ids),), ids.shape[1])
            self.generated.append((output.cpu(), ids.shape[1], lengths.cpu()))
            return output

        model.generate = recording

    def forward(self, module, args, kwargs):
        ids = kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]
        rows, new = ids.shape
        cache = kwargs.get("past_key_values")
        cached = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
        keep = kwargs.get("logits_to_keep", 0)
        self.forwards.append((rows, new, int(cached), rows * (keep if isinstance(keep, int) and keep else new)))

    def clear(self) -> None:
        self.forwards.clear()
        self.generated.clear()


def run_flops(recorder: Recorder, shape: workload.Shape) -> float:
    """Forward FLOPs of the recorded passes: each new token attends to every cached position and the new ones."""
    return sum(shape.forward_flops(rows * new, rows * new * (cached + new), head)
               for rows, new, cached, head in recorder.forwards)


def reply_lengths(recorder: Recorder, eos_token_id: int) -> list[int]:
    """Tokens of each recorded reply, up to and including its first EOS."""
    lengths = []
    for output, width, _ in recorder.generated:
        for row in output[:, width:].tolist():
            lengths.append(row.index(eos_token_id) + 1 if eos_token_id in row else len(row))
    return lengths


def useful_flops(recorder: Recorder, shape: workload.Shape, eos_token_id: int) -> float:
    """FLOPs needed: each prompt's prefill once (causal attention, its real tokens), then for each reply of n
    tokens the n - 1 forwards of its tokens but the last, token i attending to the p + i positions of its prefix
    and itself, and the LM head on its n tokens."""
    total = 0.0
    for output, width, prompt_lengths in recorder.generated:
        samples = len(output) // len(prompt_lengths)
        for p in prompt_lengths.tolist():
            total += shape.forward_flops(p, p * (p + 1) // 2, 0)
        for index, row in enumerate(output[:, width:].tolist()):
            p = int(prompt_lengths[index // samples])
            n = row.index(eos_token_id) + 1 if eos_token_id in row else len(row)
            total += shape.forward_flops(n - 1, sum(p + i for i in range(1, n)), n)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hh", help="an Anthropic HH jsonl(.gz) file")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--responses", type=int, default=4, help="top-p samples per prompt")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-prompt-tokens", type=int, help="cut longer prompts to their last tokens")
    parser.add_argument("--methods", nargs="+", choices=["top_p", "greedy"], default=["top_p", "greedy"])
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each way, taking turns going first; the fastest is kept")
    workload.add_model_arguments(parser)
    args = parser.parse_args()

    from rrhf.sampling.generation import encode_prompts, generate_responses, generation_batches, prompt_budget

    frame, origin = workload.load_pairs(args.hh, max(400, args.prompts))
    prompts = list(frame["prompt"].head(args.prompts))
    model, tokenizer, shape, described = workload.workload_model(args, "lm", frame, torch.float32)
    model.eval()
    tokenizer.padding_side = "left"
    eos = tokenizer.eos_token_id
    budget = prompt_budget(model, args.max_new_tokens)
    if args.max_prompt_tokens is not None:
        budget = args.max_prompt_tokens if budget is None else min(budget, args.max_prompt_tokens)
    batches = generation_batches(prompts, args.batch_size)
    encoded = [encode_prompts(tokenizer, [prompts[i] for i in chunk], budget)[0] for _, chunk in batches]
    recorder = Recorder(model)
    parameters = {"top_p": dict(do_sample=True, top_p=args.top_p, temperature=args.temperature, top_k=0),
                  "greedy": dict(do_sample=False, num_beams=1)}
    samples = {"top_p": args.responses, "greedy": 1}

    def project(method: str) -> list[list[str]]:
        return generate_responses(model, tokenizer, prompts, method, num_responses=samples[method],
                                  max_new_tokens=args.max_new_tokens, top_p=args.top_p, temperature=args.temperature,
                                  seed=args.seed, batch_size=args.batch_size, max_prompt_tokens=args.max_prompt_tokens)

    def plain(method: str) -> list[torch.Tensor]:
        outputs = []
        for (number, _), inputs in zip(batches, encoded):
            inputs = inputs.to(args.device)
            torch.manual_seed(args.seed + number)
            outputs.append(model.generate(**inputs, num_return_sequences=samples[method], eos_token_id=eos,
                                          pad_token_id=tokenizer.pad_token_id, max_new_tokens=args.max_new_tokens,
                                          **parameters[method]))
        return outputs

    def decoded(method: str, outputs: list[torch.Tensor]) -> list[list[str]]:
        texts: list[list[str]] = [[] for _ in prompts]
        k = samples[method]
        for (_, chunk), inputs, output in zip(batches, encoded, outputs):
            replies = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for position, index in enumerate(chunk):
                texts[index] = replies[position * k:(position + 1) * k]
        return texts

    def timed(run, method: str):
        recorder.clear()
        workload.synchronize(args.device)
        start = time.perf_counter()
        result = run(method)
        workload.synchronize(args.device)
        seconds = time.perf_counter() - start
        return (seconds, sum(reply_lengths(recorder, eos)), run_flops(recorder, shape),
                useful_flops(recorder, shape, eos), result)

    peak = workload.matmul_peak(args.device, torch.float32)
    prompt_tokens = [int(e["attention_mask"].sum()) for e in encoded]
    print(workload.machine(args.device))
    print(f"{origin}; {len(prompts)} prompts ({sum(prompt_tokens):,} tokens, longest "
          f"{max(int(e['attention_mask'].shape[1]) for e in encoded)}), {len(batches)} batches of up to "
          f"{args.batch_size}; top_p: {args.responses} samples each, top-p {args.top_p}, temperature "
          f"{args.temperature}, top-k off; greedy: 1 each; up to {args.max_new_tokens} new tokens; {described}; "
          f"{args.device} float32; matmul peak {peak / 1e9:,.0f} GFLOP/s")
    torch.manual_seed(args.seed)  # warm-up: one short generate
    model.generate(**encoded[0].to(args.device), max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    rows, checks = [], []
    for method in args.methods:
        runs: dict[str, list] = {"project": [], "plain": []}
        for repeat in range(args.repeats):  # the two ways take turns going first
            for way in ("project", "plain") if repeat % 2 == 0 else ("plain", "project"):
                runs[way].append(timed(project if way == "project" else plain, method))
        mine, theirs = (min(runs[way], key=lambda run: run[0]) for way in ("project", "plain"))
        rows += [(f"{method:6s} generate_responses (the project)", mine),
                 (f"{method:6s} model.generate (plain)", theirs)]
        same = sum(a == b for a, b in zip(mine[4], decoded(method, theirs[4])))
        checks.append(f"{method}: project / plain time {mine[0] / theirs[0]:.2f}, tokens per second "
                      f"{(mine[1] / mine[0]) / (theirs[1] / theirs[0]):.2f}; the same replies for {same} of "
                      f"{len(prompts)} prompts")
    peak = max(peak, workload.matmul_peak(args.device, torch.float32))
    print(f"matmul peak, the larger of before and after the runs: {peak / 1e9:,.0f} GFLOP/s")
    print(f"{'':44s} {'tokens':>8s} {'seconds':>9s} {'tokens/s':>9s} {'of peak':>8s} {'useful':>8s}")
    for label, (seconds, tokens, flops, useful, _) in rows:
        print(f"{label:44s} {tokens:8,d} {seconds:9.3f} {tokens / seconds:9.1f} {flops / seconds / peak:8.1%} "
              f"{useful / seconds / peak:8.1%}")
    for line in checks:
        print(line)


if __name__ == "__main__":
    main()
