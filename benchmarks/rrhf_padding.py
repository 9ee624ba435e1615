"""How much padding RRHF batches carry: one padded forward per batch vs length-sorted chunks.

Usage (after `make run`, or any run that built the files):

    .venv/bin/python benchmarks/rrhf_padding.py [SCORED_PARQUET] [POLICY_DIR]

Prints the tokens a forward pass processes (real and padded) per epoch for the
batching of config/config.yaml's rrhf section, and the wall time of one epoch
of forward+backward both ways.
"""

import sys
import time

import torch
import yaml
from transformers import AutoModelForCausalLM

from rrhf.io import read_parquet
from rrhf.models import load_tokenizer
from rrhf.train_rrhf import MAX_LENGTH_SPREAD, SCORED_COLUMNS, build_examples, collate_queries, make_rrhf_loss
from rrhf.training import length_bucketed_batches


def padded_tokens(batch: dict) -> int:
    return sum(batch[key].numel() for key in batch if key.startswith("input_ids_"))


def main(scored_path: str, policy_dir: str) -> None:
    config = yaml.safe_load(open("config/config.yaml"))["rrhf"]
    training = config["training"]
    tokenizer = load_tokenizer(policy_dir, padding_side="right")
    examples = build_examples(read_parquet(scored_path, SCORED_COLUMNS), tokenizer, training["max_length"])
    batches = length_bucketed_batches([e.length for e in examples], training["batch_size"], training["seed"])
    real = sum(len(s) for e in examples for s in e.sequences)
    print(f"{len(examples)} queries, {sum(len(e.sequences) for e in examples)} sequences, {real} real tokens")
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    loss_fn = make_rrhf_loss(1.0, 1.0, "token_mean")
    for label, budget, spread in (("one padded forward per batch", 1 << 30, float("inf")),
                                  (f"chunks: <= {config['max_tokens_per_forward']} tokens, longest <= "
                                   f"{MAX_LENGTH_SPREAD} x shortest", config["max_tokens_per_forward"],
                                   MAX_LENGTH_SPREAD)):
        collated = [collate_queries([examples[i] for i in batch], tokenizer.pad_token_id, budget, spread)
                    for batch in batches]
        tokens = sum(padded_tokens(b) for b in collated)
        start = time.perf_counter()
        for batch in collated:
            loss, _ = loss_fn(model, batch)
            loss.backward()
            model.zero_grad()
        seconds = time.perf_counter() - start
        print(f"{label:58s} {tokens:8d} tokens processed ({tokens / real - 1:6.1%} padding), "
              f"epoch forward+backward {seconds:.2f} s")


if __name__ == "__main__":
    torch.manual_seed(0)
    main(sys.argv[1] if len(sys.argv) > 1 else "results/scored/instruct/DP.parquet",
         sys.argv[2] if len(sys.argv) > 2 else "resources/models/instruct")
