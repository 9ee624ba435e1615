"""How prompts and their responses become tensors: a query's prompt computed once for its responses (packed
rows), and length-sorted chunks of queries. Shared by training, scoring and evaluation."""
