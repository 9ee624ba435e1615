"""The memory plan's estimates (rrhf.plan.memory) against what a CPU measures, for two model sizes.

Two measurements per LLaMA-style model size, each in its own process:

- one RRHF training step in the one loop (float32, no mixed precision, as on a CPU), against the estimate's
  weights + gradients + AdamW state + activations (what rrhf.plan.memory_plan adds up for train_rrhf); measured as
  the peak resident set size the step added over the process before the model existed;
- the activation constants themselves: the bytes autograd keeps for the backward pass of the model's blocks
  (every tensor saved for backward, counted once, parameters not), against ``block_activations``, in float32 and
  under bf16 autocast.

The ratios are measured / estimated. The plan's constants leave out what attention keeps beyond its inputs and
output, which grows with the sequence's length and depends on the kernel (none for a GPU's flash or
memory-efficient sdpa). On a GPU, `make gpu-check` compares the whole plan of each rule with torch's peak.

    python benchmarks/memory_estimates.py [--sizes 4x256 8x512 --tokens 512]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

K = 4  # replies per query
VOCABULARY = 8000


def llama(layers: int, hidden: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rrhf.models.tiny import llama_intermediate_size

    config = LlamaConfig(vocab_size=VOCABULARY, hidden_size=hidden, intermediate_size=llama_intermediate_size(hidden),
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def facts(model):
    """The planner's ModelFacts of a model built here, counted from its config as the planner counts them."""
    from rrhf.plan.model_facts import _facts

    values = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
    return _facts(json.dumps(values, sort_keys=True, default=str), "causal_lm", "benchmark")


def rss_bytes() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) * 1024


def training_step(layers: int, hidden: int, queries: int, length: int, out) -> None:
    """Peak RSS one RRHF step adds (bytes), and the plan's parts for it."""
    import torch

    from rrhf.batching.query_batches import QueryExample, collate_queries
    from rrhf.plan.memory import Layout, block_activations, logits, training_state
    from rrhf.training.loop import Trainer
    from rrhf.training.ranking import make_rrhf_loss

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    examples = [QueryExample(torch.randint(3, VOCABULARY, (8,), generator=generator).tolist(),
                             [torch.randint(3, VOCABULARY, (length - 8,), generator=generator).tolist()
                              for _ in range(K)], [float(k) for k in range(K)]) for _ in range(queries)]
    before = rss_bytes()
    model = llama(layers, hidden)
    trainer = Trainer(model, {"batch_size": queries, "learning_rate": 1e-4, "warmup_ratio": 0.0, "seed": 0},
                      {"mixed_precision": "no"}, total_steps=1)
    trainer.run_epochs(examples, [length] * queries, lambda batch: collate_queries(batch, 0, 1 << 30),
                       make_rrhf_loss(1.0, 1.0, "token_mean"), 1, 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sizes = facts(model)
    tokens = queries * K * length
    parts = training_state(sizes, sizes.parameters, Layout(1))
    parts["activations"] = block_activations(sizes, tokens, 4, False, sizes.layers) + logits(sizes, tokens, 4)
    out.put({"measured": peak - before, "parts": parts, "parameters": sizes.parameters})


def saved_for_backward(model, sequences: int, length: int, autocast: bool) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of a LLaMA-style model's blocks (``model.model``,
    without the LM head, whose logits the plan counts apart) on random token ids: each storage once, not the
    weights nor autocast's copies of them."""
    import torch

    kept: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    shapes = {tuple(p.shape) for p in model.parameters()}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights and not (tensor.dim() <= 2 and tuple(tensor.shape) in shapes):
            kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    vocabulary = model.config.vocab_size
    ids = torch.randint(3, vocabulary, (sequences, length), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model.model(input_ids=ids)
    return sum(kept.values())


def saved_activations(layers: int, hidden: int, sequences: int, length: int, autocast: bool, out) -> None:
    """:func:`saved_for_backward` of a model of ``layers`` blocks less that of one of 1 block, and the plan's
    figure for the difference."""
    from rrhf.plan.memory import block_activations

    model = llama(layers, hidden)
    measured = (saved_for_backward(model, sequences, length, autocast)
                - saved_for_backward(llama(1, hidden), sequences, length, autocast))
    sizes = facts(model)
    out.put({"measured": measured, "estimated": block_activations(sizes, sequences * length, 2 if autocast else 4,
                                                                  False, layers - 1)})


def in_process(function, *args):
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=function, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["4x256", "8x512"], help="LAYERSxHIDDEN of each model")
    parser.add_argument("--tokens", type=int, default=128, help="tokens of each reply sequence in the step")
    parser.add_argument("--queries", type=int, default=4, help="queries in the step (each with 4 replies)")
    args = parser.parse_args()
    gib = 2 ** 30
    print(f"{'model':>8} {'params':>8}  {'what':<36} {'measured':>9} {'planned':>8} {'ratio':>6}   (GiB)")

    def row(size, params, what, measured, plan):
        print(f"{size:>8} {params:>8}  {what:<36} {measured / gib:9.3f} {plan / gib:8.3f} {measured / plan:6.2f}")

    for size in args.sizes:
        layers, hidden = map(int, size.split("x"))
        step = in_process(training_step, layers, hidden, args.queries, args.tokens)
        row(size, f"{step['parameters'] / 1e6:.1f}M", "RRHF step (float32), peak RSS", step["measured"],
            sum(step["parts"].values()))
        for autocast in (False, True):
            kept = in_process(saved_activations, layers, hidden, args.queries * K, args.tokens, autocast)
            row(size, "", f"block activations ({'bf16 autocast' if autocast else 'float32'})", kept["measured"],
                kept["estimated"])


if __name__ == "__main__":
    main()
