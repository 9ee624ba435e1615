"""Small scored training sets for the RRHF tests."""

import pandas as pd


def scored_set(frame: pd.DataFrame, n_prompts: int) -> pd.DataFrame:
    """Four responses per prompt: chosen (reward 2), rejected (-2) and two other prompts' replies (0, -1)."""
    rows = []
    head = frame.head(n_prompts).reset_index(drop=True)
    for i, item in head.iterrows():
        other = head.iloc[(i + 1) % n_prompts]
        replies = [(item["chosen"], 2.0), (item["rejected"], -2.0), (other["chosen"], 0.0), (other["rejected"], -1.0)]
        for k, (response, reward) in enumerate(replies):
            rows.append({"prompt_id": item["prompt_id"], "prompt": item["prompt"], "response_index": k,
                         "response": response, "source": "test", "reward": reward})
    return pd.DataFrame(rows)
