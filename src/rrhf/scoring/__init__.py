"""Reward scoring of responses and the training set of each setting."""
