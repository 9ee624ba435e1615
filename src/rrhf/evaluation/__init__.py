"""Evaluation of policies and reward models: test generations with reward, gold reward and perplexity,
best-of-n, pair accuracy (Table 5) and the reward model's agreement with gold."""
