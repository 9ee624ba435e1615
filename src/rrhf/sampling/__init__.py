"""Sampling responses from a policy: beam, diverse beam (the paper's), top-p and greedy."""
