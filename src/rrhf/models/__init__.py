"""Loading and building models: policies, reward models (incl. value-head checkpoints), LoRA adapters,
the tiny default's tokenizer and LMs, and token-level log-probabilities of spans."""
