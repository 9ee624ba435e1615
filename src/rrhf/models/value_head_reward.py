"""The paper's reward model, Dahoas/gptj-rm-static: a GPT-J backbone plus a bias-free linear value head.

Its hub repo holds a raw state dict, ``hf_ckpt.pt``, not a transformers model folder. trlX
(CarperAI/trlx, examples/hh/ppo_hh.py, class ``RewardModel``) and the RRHF authors' scoring script
(GanjinZero/RRHF, data_generation/scoring_responses.py) build it as ``AutoModelForCausalLM``'s
``.transformer`` plus ``v_head = nn.Linear(n_embd, 1, bias=False)``, score ``text + "<|endoftext|>"``
with the GPT-2 tokenizer (pad = EOS), and read the value head at the first EOS token's own position:

    ends = torch.argmax((input_ids == self.eos_token_id).float(), dim=1).view(-1, 1)
    returns = torch.gather(rewards, 1, ends).squeeze(-1)

Besides ``transformer.*`` and ``v_head.weight`` the checkpoint holds a duplicate of the wrapped causal LM
(``model.transformer.*``, ``model.lm_head.*``; RRHF drops every ``model.`` key) and the ``attn.bias`` /
``attn.masked_bias`` buffers of old transformers, which current GPT-J no longer has.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from rrhf.io import naming_damage

CHECKPOINT_FILE = "hf_ckpt.pt"
LEGACY_BUFFERS = ("attn.bias", "attn.masked_bias")  # causal-mask buffers saved by transformers < 4.3x


@dataclass
class RewardOutput:
    """logits (n, 1): the value head at each row's reward position; positions (n,): that position."""

    logits: torch.Tensor
    positions: torch.Tensor


def reward_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, eos_token_id: int) -> torch.Tensor:
    """Where each row's reward is read, (n,) from input_ids (n, L) and attention_mask (n, L) or None.

    The first EOS among the real tokens (attention_mask 1; all tokens when None), at the EOS token's own
    position as trlX and RRHF do (``argmax(input_ids == eos)``). As pad = EOS, padding (mask 0) is never
    taken for the EOS. A row with no real EOS (e.g. cut by truncation) uses its last real token; there
    trlX/RRHF's argmax would give position 0.
    """
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    is_eos = (input_ids == eos_token_id) & real
    first_eos = is_eos.int().argmax(dim=1)
    steps = torch.arange(input_ids.shape[1], device=input_ids.device)
    last_real = torch.where(real, steps, torch.zeros_like(steps)).amax(dim=1)
    return torch.where(is_eos.any(dim=1), first_eos, last_real)


class ValueHeadRewardModel(nn.Module):
    """backbone (e.g. GPTJModel, kept as ``transformer`` so the checkpoint's keys match) + ``v_head``.

    ``forward(input_ids (n, L), attention_mask (n, L))`` returns a :class:`RewardOutput` whose ``logits``
    (n, 1) are the value head's output at each row's reward position (:func:`reward_positions`).
    ``config`` is the backbone's config.
    """

    def __init__(self, backbone: nn.Module, eos_token_id: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.transformer = backbone
        self.config = backbone.config
        self.eos_token_id = int(eos_token_id)
        self.v_head = nn.Linear(self.config.hidden_size, 1, bias=False, dtype=dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> RewardOutput:
        """hidden states (n, L, H) of the backbone -> values (n, 1) at the reward positions (n,)."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        positions = reward_positions(input_ids, attention_mask, self.eos_token_id)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return RewardOutput(logits=self.v_head(hidden[rows, positions]), positions=positions)


def resolve_checkpoint(checkpoint: str) -> str:
    """Local path of the state dict: ``checkpoint`` itself if a file, ``checkpoint``/hf_ckpt.pt if a folder,
    else hf_ckpt.pt of the hub repo ``checkpoint`` ("owner/name" or "owner/name@revision") via
    ``hf_hub_download`` (which honours HF_HUB_OFFLINE and the cache)."""
    path = Path(checkpoint)
    if path.is_file():
        return str(path)
    if path.is_dir():
        if not (path / CHECKPOINT_FILE).is_file():
            raise FileNotFoundError(f"reward checkpoint folder {checkpoint!r} has no {CHECKPOINT_FILE}")
        return str(path / CHECKPOINT_FILE)
    if checkpoint.startswith((".", "/", "~")) or checkpoint.endswith((".pt", ".bin", ".safetensors")):
        raise FileNotFoundError(f"reward checkpoint {checkpoint!r} does not exist")
    from huggingface_hub import hf_hub_download

    repo_id, _, revision = checkpoint.partition("@")
    return hf_hub_download(repo_id=repo_id, filename=CHECKPOINT_FILE, revision=revision or None)


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file, on the CPU: safetensors for .safetensors, else ``torch.load`` with
    ``weights_only=True``, so nothing but tensors and plain containers is ever unpickled."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(f"{path}: refused to load a checkpoint holding more than tensors "
                                     f"(weights_only=True): {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat state dict of tensors, got {type(state).__name__}")
    return state


def select_weights(state: dict[str, torch.Tensor], expected: set[str], origin: str) -> dict[str, torch.Tensor]:
    """``state`` without the wrapped LM's duplicate ``model.*`` keys and unused legacy attention buffers;
    raises ValueError naming any expected key that is missing or any other key left over."""
    kept = {k: v for k, v in state.items()
            if not k.startswith("model.") and (k in expected or not k.endswith(LEGACY_BUFFERS))}
    missing = sorted(expected - kept.keys())
    unexpected = sorted(kept.keys() - expected)
    if missing or unexpected:
        raise ValueError(f"{origin}: does not match the reward model: missing keys {missing}, "
                         f"unexpected keys {unexpected}")
    return kept


def build_model(config, eos_token_id: int, dtype: torch.dtype, trust_remote_code: bool = False) -> ValueHeadRewardModel:
    """An uninitialised-weights reward model in ``dtype`` from the backbone ``config`` alone (no download).
    Random initialisation is skipped when transformers allows it, as every weight comes from the checkpoint;
    non-persistent buffers (e.g. GPT-J's rotary table) are still computed in the modules' constructors."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialise normally (slower, same result)
        from contextlib import nullcontext as no_init_weights
    with no_init_weights():
        backbone = AutoModel.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    return ValueHeadRewardModel(backbone, eos_token_id, dtype=dtype)


def load_value_head_reward_model(checkpoint: str, backbone: str, dtype: torch.dtype = torch.float32,
                                 trust_remote_code: bool = False):
    """(model, tokenizer): the value-head reward model in eval mode, on the CPU, in ``dtype``, frozen, and
    the backbone's tokenizer with pad = EOS, padding_side "right" (truncation_side "left", as trlX).

    ``checkpoint``: a state-dict file, a folder holding hf_ckpt.pt, or a hub repo id (see
    :func:`resolve_checkpoint`); ``backbone``: hub id or folder with the backbone's config.json and
    tokenizer (EleutherAI/gpt-j-6B for the paper); only its config is read, never its weights.
    """
    tokenizer = AutoTokenizer.from_pretrained(backbone, trust_remote_code=trust_remote_code)
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer of {backbone!r} has no EOS token, where the reward is read")
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"
    path = resolve_checkpoint(checkpoint)
    config = AutoConfig.from_pretrained(backbone, trust_remote_code=trust_remote_code)
    model = build_model(config, tokenizer.eos_token_id, dtype, trust_remote_code)
    with naming_damage(path, "the value-head checkpoint"):
        weights = select_weights(load_state_dict_file(path), set(model.state_dict()), origin=path)
        model.load_state_dict(weights, strict=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval().requires_grad_(False), tokenizer
