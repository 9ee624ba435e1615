"""One training loop and the methods that plug into it: LM pre-training and SFT, the reward model, RRHF
(offline, iterated and online) and PPO; checkpoints and multi-GPU launch."""
