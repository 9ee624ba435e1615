"""Every sequence a model reads starts the way its own tokenizer starts a text: LLaMA's BOS first.

The policies of config/paper.yaml (LLaMA-7B, Alpaca) were trained with a BOS token in front of every text, as
their tokenizer and the official RRHF code put it. Here a tiny LLaMA-style model gets such a tokenizer (a BOS
added by its post-processor, as LLaMA's does), and a hook on the model records every forward pass while each
stage runs: sampling (every sampler), the rollouts of PPO, training batches (packed and separate), reward
scoring, perplexity and the KL to the initial policy. In every sequence, the first token is the BOS, and no other
token is, whatever was cut from a long prompt.
"""

import pandas as pd
import pytest
import torch
from tokenizers import processors
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from rrhf.batching.query_batches import build_examples, query_collator, response_logprobs
from rrhf.config.blocks import RolloutSampling
from rrhf.evaluation.divergence import response_kl
from rrhf.evaluation.perplexity import response_nll
from rrhf.models.loading import load_causal_lm, load_reward_model
from rrhf.models.token_spans import encode_pair
from rrhf.sampling.generation import generate_responses
from rrhf.sampling.rollouts import sample_actions
from rrhf.scoring.rewards import encode_for_reward, score, shares_prompts
from scored_sets import scored_set

LONG = "\n\nHuman: " + " ".join(["please tell me about the weather and the sea"] * 30) + "\n\nAssistant:"


@pytest.fixture(scope="module")
def bos_models(tmp_path_factory, synthetic_frame):
    """(policy folder, reward model folder, BOS id): a LLaMA-style causal LM and sequence classifier whose
    tokenizer puts <s> first, as LLaMA's does."""
    from rrhf.models.tiny import train_tokenizer, transcripts

    folder = tmp_path_factory.mktemp("bos")
    tokenizer = train_tokenizer(transcripts(synthetic_frame), vocab_size=400)
    tokenizer.add_special_tokens({"bos_token": "<s>"})
    bos = tokenizer.convert_tokens_to_ids("<s>")
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=bos, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder / "policy")
    LlamaForSequenceClassification(LlamaConfig(**{**config.to_dict(), "num_labels": 1})).save_pretrained(
        folder / "reward")
    for name in ("policy", "reward"):
        tokenizer.save_pretrained(folder / name)
    assert tokenizer("Human: hi")["input_ids"][0] == bos  # the tokenizer itself starts texts with BOS
    return str(folder / "policy"), str(folder / "reward"), bos


class Recorder:
    """Records the tokens of every sequence in each forward pass of a model that starts from no cache."""

    def __init__(self, model, pad: int):
        self.sequences: list[list[int]] = []
        self.pad = pad
        self.handle = model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("past_key_values")
        if ids is None or (cache is not None and cache.get_seq_length() > 0):
            return  # a decoding step after the prompt
        positions, mask = kwargs.get("position_ids"), kwargs.get("attention_mask")
        for row in range(ids.shape[0]):
            if positions is not None and mask is not None and mask.dim() == 4:  # packed: each sequence restarts at 0
                real = int((ids[row] != self.pad).nonzero().max()) + 1  # rows are right-padded
                starts = (positions[row, :real] == 0).nonzero().flatten().tolist()
                ends = starts[1:] + [real]
                self.sequences += [ids[row, start:end].tolist() for start, end in zip(starts, ends)]
            else:
                real = mask[row].bool() if mask is not None and mask.dim() == 2 else torch.ones_like(ids[row]).bool()
                self.sequences.append(ids[row][real].tolist())

    def check(self, bos: int, at_least: int = 1):
        self.handle.remove()
        assert len(self.sequences) >= at_least
        for sequence in self.sequences:
            assert sequence[0] == bos, f"a sequence starts with {sequence[:3]}, not the BOS {bos}"
            assert bos not in sequence[1:], "a second BOS inside a sequence"


def prompts_and_replies(frame: pd.DataFrame):
    prompts = [LONG] + list(frame["prompt"].head(3))
    return prompts, [" Sure, here it is."] * len(prompts)


@pytest.mark.parametrize("method", ["greedy", "beam", "diverse_beam", "top_p"])
def test_every_sampled_sequence_starts_with_bos(bos_models, synthetic_frame, method):
    policy, _, bos = bos_models
    model, tokenizer = load_causal_lm(policy)
    prompts, _ = prompts_and_replies(synthetic_frame)
    recorder = Recorder(model, tokenizer.pad_token_id)
    k = 1 if method == "greedy" else 2
    generate_responses(model, tokenizer, prompts, method, num_responses=k, num_beams=2, num_beam_groups=2,
                       max_new_tokens=4, batch_size=2)
    recorder.check(bos, at_least=len(prompts))


def test_ppo_rollouts_start_with_bos_and_keep_it_when_the_prompt_is_cut(bos_models, synthetic_frame):
    policy, _, bos = bos_models
    model, tokenizer = load_causal_lm(policy)
    prompts, _ = prompts_and_replies(synthetic_frame)
    recorder = Recorder(model, tokenizer.pad_token_id)
    samples = sample_actions(model, tokenizer, prompts, RolloutSampling.with_defaults({"max_new_tokens": 4}), 40, 0)
    recorder.check(bos, at_least=len(prompts))
    assert all(ids[0] == bos for ids, _, _ in samples)
    assert len(samples[0][0]) == 40  # the long prompt cut to its last tokens after the BOS


@pytest.mark.parametrize("sharing", ["packed", "separate"])
def test_every_trained_sequence_starts_with_bos(bos_models, synthetic_frame, sharing):
    policy, _, bos = bos_models
    model, tokenizer = load_causal_lm(policy)
    scored = scored_set(synthetic_frame, 4)
    scored.loc[0, "prompt"] = scored.loc[1, "prompt"] = scored.loc[2, "prompt"] = scored.loc[3, "prompt"] = LONG
    examples = build_examples(scored, tokenizer, 64)
    collate = query_collator(model, tokenizer, 4096, sharing, "rrhf.prompt_sharing", "test")
    recorder = Recorder(model, tokenizer.pad_token_id)
    with torch.no_grad():
        response_logprobs(model, collate(examples))
    recorder.check(bos, at_least=len(examples) * (4 if sharing == "separate" else 1))
    assert all(example.prompt[0] == bos and len(example.prompt) + max(map(len, example.responses)) <= 64
               for example in examples)


def test_every_scored_sequence_starts_with_bos(bos_models, synthetic_frame):
    _, reward_path, bos = bos_models
    reward, tokenizer = load_reward_model(reward_path)
    prompts, replies = prompts_and_replies(synthetic_frame)
    shares_prompts(reward, tokenizer, "auto")  # its probe (plain token ids) runs before the recording
    recorder = Recorder(reward.model, tokenizer.pad_token_id)  # the backbone: packed rows are read through it
    score(reward, tokenizer, prompts + prompts, replies + [" No."] * len(replies), max_length=48)
    recorder.check(bos, at_least=len(prompts))
    ids = encode_for_reward(tokenizer, LONG, " Sure.", 32)
    assert ids[0] == bos and len(ids) == 32 and ids[-1] == tokenizer.eos_token_id


def test_perplexity_and_kl_read_sequences_that_start_with_bos(bos_models, synthetic_frame):
    policy, _, bos = bos_models
    model, tokenizer = load_causal_lm(policy)
    reference, _ = load_causal_lm(policy)
    prompts, replies = prompts_and_replies(synthetic_frame)
    recorders = [Recorder(model, tokenizer.pad_token_id)]
    response_nll(model, tokenizer, prompts, replies, max_length=48)
    recorders[0].check(bos, at_least=len(prompts))
    recorders = [Recorder(model, tokenizer.pad_token_id), Recorder(reference, tokenizer.pad_token_id)]
    response_kl(model, reference, tokenizer, prompts, replies, max_length=48)
    for recorder in recorders:
        recorder.check(bos, at_least=len(prompts))
    ids, start = encode_pair(tokenizer, LONG, " Sure.", 24)
    assert ids[0] == bos and len(ids) == 24 and ids[start:] == tokenizer(" Sure.", add_special_tokens=False)[
        "input_ids"] + [tokenizer.eos_token_id]


def test_a_tokenizer_without_bos_gets_nothing_in_front(tiny_lm_dir):
    """The tiny default's tokenizer (like GPT-2's) starts a text with no special token: its sequences are as
    before."""
    from rrhf.models.token_spans import sequence_start

    _, tokenizer = load_causal_lm(str(tiny_lm_dir))
    assert sequence_start(tokenizer) == []
    text = "\n\nHuman: hi\n\nAssistant:"
    assert encode_pair(tokenizer, text, " ok", 64)[0][:3] == tokenizer(text, add_special_tokens=False)["input_ids"][:3]
