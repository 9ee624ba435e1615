"""Group (diverse) beam search with Hamming diversity (Vijayakumar et al., 2018).

transformers 5.x dropped group beam search from its core. This is our own
decoding loop, written to give the same sequences, in the same order, as
``generate(num_beams=B, num_beam_groups=G, diversity_penalty=λ,
num_return_sequences=K)`` of transformers 4.56.1: the same beam-score
initialisation, per-group top-k of ``2 * group_size`` candidates, Hamming
penalty on the log-probabilities, finished-hypothesis bookkeeping with length
penalty and early-stopping heuristic, and final ranking across groups. With
``num_beam_groups=1`` it is plain beam search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rrhf.models.loading import model_positions


@dataclass
class Hypotheses:
    """The best ``size`` finished hypotheses of one (prompt, group), as transformers' BeamHypotheses."""

    size: int
    length_penalty: float
    early_stopping: bool
    beams: list[tuple[float, torch.Tensor]] = field(default_factory=list)
    worst_score: float = 1e9

    def add(self, tokens: torch.Tensor, sum_logprobs: float, generated_len: int) -> None:
        score = sum_logprobs / (generated_len ** self.length_penalty)
        if len(self.beams) < self.size or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self.beams) > self.size:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        if len(self.beams) < self.size:
            return False
        if self.early_stopping:
            return True
        return self.worst_score >= best_sum_logprobs / generated_len ** self.length_penalty


def hamming_penalty(scores: torch.Tensor, step_tokens: torch.Tensor, group: int, group_size: int,
                    num_beams: int, penalty: float) -> torch.Tensor:
    """Subtract ``penalty`` × (times each token was already chosen by earlier groups at this step).

    scores: (batch * group_size, vocab) log-probs of one group's beams.
    step_tokens: (batch * num_beams,) tokens picked so far at this step (earlier groups filled in).
    """
    if group == 0:
        return scores
    batch = step_tokens.shape[0] // num_beams
    earlier = step_tokens.view(batch, num_beams)[:, : group * group_size]
    counts = torch.zeros(batch, scores.shape[-1], dtype=scores.dtype, device=scores.device)
    counts.scatter_add_(1, earlier, torch.ones_like(earlier, dtype=scores.dtype))
    return scores - penalty * counts.repeat_interleave(group_size, dim=0)


@torch.no_grad()
def group_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, num_beams: int,
                      num_beam_groups: int, diversity_penalty: float, max_new_tokens: int,
                      num_return_sequences: int, eos_token_id: int, pad_token_id: int,
                      length_penalty: float = 1.0, early_stopping: bool = False) -> torch.Tensor:
    """Diverse beam search for a decoder-only LM.

    input_ids, attention_mask: (batch, prompt_len), left-padded.
    Returns (batch * num_return_sequences, prompt_len + L) token ids, prompt
    included, best first within each prompt; shorter sequences end in EOS then
    padding, as transformers' ``generate`` returns them.
    """
    if num_beams % num_beam_groups:
        raise ValueError(f"num_beams={num_beams} is not divisible by num_beam_groups={num_beam_groups}")
    if num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences={num_return_sequences} exceeds num_beams={num_beams}")
    device = input_ids.device
    batch, prompt_len = input_ids.shape
    limit = model_positions(model)
    if limit and prompt_len + max_new_tokens > limit:
        raise ValueError(f"prompt of {prompt_len} tokens + max_new_tokens {max_new_tokens} exceed the model's "
                         f"{limit} positions; cut the prompt (rrhf.sampling.generation.encode_prompts keeps its "
                         "last tokens)")
    group_size = num_beams // num_beam_groups
    max_length = prompt_len + max_new_tokens
    hyps = [Hypotheses(group_size, length_penalty, early_stopping) for _ in range(batch * num_beam_groups)]
    done = [False] * (batch * num_beam_groups)

    sequences = input_ids.repeat_interleave(num_beams, dim=0)
    mask = attention_mask.repeat_interleave(num_beams, dim=0)
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    beam_scores = torch.full((batch, num_beams), -1e9, dtype=torch.float, device=device)
    beam_scores[:, ::group_size] = 0
    beam_scores = beam_scores.view(-1)
    past = None
    step_input, step_positions = sequences, positions

    while True:
        out = model(input_ids=step_input, attention_mask=mask, position_ids=step_positions,
                    past_key_values=past, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
        del out
        step_tokens = torch.zeros(batch * num_beams, dtype=sequences.dtype, device=device)
        reorder = torch.zeros(batch * num_beams, dtype=torch.long, device=device)
        cur_len = sequences.shape[1] + 1
        for group in range(num_beam_groups):
            first = group * group_size
            rows = torch.tensor([b * num_beams + first + j for b in range(batch) for j in range(group_size)],
                                device=device)
            group_seqs = sequences[rows]
            logprobs = F.log_softmax(logits[rows], dim=-1)
            vocab = logprobs.shape[-1]
            logprobs = hamming_penalty(logprobs, step_tokens, group, group_size, num_beams, diversity_penalty)
            candidates = (logprobs + beam_scores[rows].unsqueeze(-1)).view(batch, group_size * vocab)
            top_scores, top_ids = torch.topk(candidates, 2 * group_size, dim=1, largest=True, sorted=True)
            top_beams = torch.div(top_ids, vocab, rounding_mode="floor")
            top_tokens = top_ids % vocab

            next_scores = torch.zeros(batch, group_size, dtype=torch.float, device=device)
            next_tokens = torch.zeros(batch, group_size, dtype=sequences.dtype, device=device)
            next_beams = torch.zeros(batch, group_size, dtype=torch.long, device=device)
            for b in range(batch):
                slot = b * num_beam_groups + group
                if done[slot]:
                    next_tokens[b, :] = pad_token_id
                    continue
                kept = 0
                for rank, (token, value, beam) in enumerate(zip(top_tokens[b].tolist(), top_scores[b].tolist(),
                                                                top_beams[b].tolist())):
                    source = b * group_size + beam
                    if token == eos_token_id:
                        if rank < group_size:
                            hyps[slot].add(group_seqs[source].clone(), value, cur_len - prompt_len)
                    else:
                        next_scores[b, kept], next_tokens[b, kept], next_beams[b, kept] = value, token, source
                        kept += 1
                    if kept == group_size:
                        break
                done[slot] = hyps[slot].is_done(float(top_scores[b].max()), cur_len - prompt_len)

            next_beams = next_beams.view(-1)
            beam_scores[rows] = next_scores.view(-1)
            sequences[rows] = group_seqs[next_beams]
            step_tokens[rows] = next_tokens.view(-1)
            reorder[rows] = (num_beams * torch.div(next_beams, group_size, rounding_mode="floor")
                             + first + next_beams % group_size)

        sequences = torch.cat([sequences, step_tokens.unsqueeze(-1)], dim=-1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
        step_positions = positions[:, -1:] + 1
        positions = torch.cat([positions, step_positions], dim=-1)
        step_input = step_tokens.unsqueeze(-1)
        past.reorder_cache(reorder)
        if all(done) or sequences.shape[1] >= max_length:
            break

    return _finalize(sequences, beam_scores, hyps, done, batch, num_beam_groups, group_size, prompt_len,
                     num_return_sequences, max_length, eos_token_id, pad_token_id)


def _finalize(sequences, beam_scores, hyps, done, batch, num_beam_groups, group_size, prompt_len,
              num_return, max_length, eos_token_id, pad_token_id) -> torch.Tensor:
    """Add the running beams to unfinished hypotheses, rank across groups, pad as ``generate`` does."""
    for slot, hyp in enumerate(hyps):
        if done[slot]:
            continue
        for j in range(group_size):
            row = slot * group_size + j
            hyp.add(sequences[row], beam_scores[row].item(), sequences.shape[-1] - prompt_len)
    best = []
    for b in range(batch):
        candidates = [beam for hyp in hyps[b * num_beam_groups:(b + 1) * num_beam_groups] for beam in hyp.beams]
        ranked = sorted(candidates, key=lambda item: item[0])
        best += [ranked.pop()[1] for _ in range(num_return)]
    lengths = [len(t) for t in best]
    width = min(max(lengths) + 1, max_length)
    out = sequences.new_full((len(best), width), pad_token_id)
    for i, tokens in enumerate(best):
        out[i, : len(tokens)] = tokens
        if len(tokens) < width:
            out[i, len(tokens)] = eos_token_id
    return out
