"""Sampling rollouts for PPO and for fine-grained feedback: one top-k / top-p sample per prompt, cut at the next
turn, with the exact tokens the policy sampled (so the actions PPO trains on are the ones taken)."""

from __future__ import annotations

import torch

from rrhf.config.blocks import RolloutSampling
from rrhf.models.token_spans import prompt_token_ids, start_and_cut
from rrhf.text import TURN_MARKER


def cut_tokens_at_turn(tokenizer, ids: list[int]) -> tuple[str, int]:
    """(text, k): the response cut before the next "Human:"/"Assistant:" turn, and the number of its tokens kept.

    The kept tokens are the longest prefix of ``ids`` that decodes to text before
    the turn marker, so the actions PPO trains on are the sampled tokens
    themselves (re-encoding the text could give other tokens). The text is
    stripped on the right, like the evaluation's ``cut_at_turn``.
    """
    text = tokenizer.decode(ids, skip_special_tokens=True)
    turn = TURN_MARKER.search(text)
    if not turn:
        return text.rstrip(), len(ids)
    kept = 0
    while kept < len(ids) and len(tokenizer.decode(ids[: kept + 1], skip_special_tokens=True)) <= turn.start():
        kept += 1
    return text[: turn.start()].rstrip(), kept


@torch.no_grad()
def sample_actions(lm, tokenizer, prompts: list[str], generation: RolloutSampling, max_prompt_tokens: int,
                   seed: int) -> list[tuple[list[int], list[int], str]]:
    """(prompt ids, response ids, response text) per prompt: one top-k / top-p sample, cut at the next turn.

    The response ends with EOS when the model ended it (EOS or a new turn, see
    :func:`cut_tokens_at_turn`); one cut off at ``max_new_tokens`` has none. The prompt starts as the tokenizer
    starts a text (LLaMA's BOS) and keeps its last tokens after that, ``max_prompt_tokens`` in all.
    """
    eos = tokenizer.eos_token_id
    prompt_ids = [start_and_cut(tokenizer, ids, max_prompt_tokens) for ids in prompt_token_ids(tokenizer, prompts)]
    width = max(map(len, prompt_ids))
    device = next(lm.parameters()).device
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompt_ids], device=device)
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=device)
    torch.manual_seed(seed)
    output = lm.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True,
                         top_k=generation.top_k, top_p=generation.top_p,
                         temperature=generation.temperature, max_new_tokens=generation.max_new_tokens,
                         eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    samples = []
    for ids, generated in zip(prompt_ids, output[:, width:].tolist()):
        ended = eos in generated
        response = generated[: generated.index(eos)] if ended else generated
        text, cut = cut_tokens_at_turn(tokenizer, response)
        response = response[:cut]
        if ended or cut < len(generated) or not response:
            response = response + [eos]
        samples.append((ids, response, text))
    return samples
