"""Fine-grained RLHF (config key ``fine_grained``; docs/fine_grained.md): feedback on the segments of a policy's
replies, a reward model per kind of error, PPO with a reward per segment, and its table."""
