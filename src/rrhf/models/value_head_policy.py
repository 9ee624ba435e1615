"""The models PPO holds: the policy with a value head, and the frozen reference rho.

With ``num_layers_unfrozen`` set, only the top layers of the policy train (as
trlX's HH configuration, 2 layers) and the reference keeps a frozen copy of just
those layers: the rest of the network is shared between the two, like trlX's
"hydra" heads. Without it the whole policy trains and the reference is a full
frozen copy. Either way the reference is "the policy's frozen parameters, with
the trained ones swapped for their snapshot". With LoRA adapters (rrhf.models.adapters)
every base weight is frozen, ``num_layers_unfrozen`` is not used, and the
reference is the base model: the policy with its adapters switched off.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.func import functional_call

from rrhf.models.adapters import adapters_disabled, has_lora

VALUE_HEAD_FILE = "value_head.safetensors"


def value_head(hidden_size: int) -> nn.Sequential:
    """trlX's value head: hidden -> 2 x hidden -> ReLU -> 1."""
    return nn.Sequential(nn.Linear(hidden_size, 2 * hidden_size), nn.ReLU(), nn.Linear(2 * hidden_size, 1))


class CausalLMWithValueHead(nn.Module):
    """A causal LM and a scalar value head on its last hidden state.

    ``forward(input_ids, attention_mask)`` with (n, L) inputs returns
    (logits (n, L, V), values (n, L)); values[:, t] estimates the return of the
    state after token t, i.e. before the action at t + 1. The logits are the LM's
    divided by ``temperature``: the policy PPO trains is the distribution its
    rollouts are sampled from.
    """

    def __init__(self, lm: nn.Module, temperature: float = 1.0):
        super().__init__()
        self.lm = lm
        self.temperature = temperature
        self.value_head = value_head(lm.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = output.hidden_states[-1]
        values = self.value_head(hidden.to(self.value_head[0].weight.dtype)).squeeze(-1)
        return output.logits / self.temperature, values

    def save_pretrained(self, folder, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """The LM as a plain Hugging Face checkpoint in ``folder`` (so every stage loads it as a policy), and the
        value head beside it in ``value_head.safetensors``."""
        state = state_dict if state_dict is not None else self.state_dict()
        self.lm.save_pretrained(folder, state_dict={k[len("lm."):]: v for k, v in state.items() if k.startswith("lm.")})
        head = {k[len("value_head."):]: v.contiguous() for k, v in state.items() if k.startswith("value_head.")}
        save_file(head, str(Path(folder) / VALUE_HEAD_FILE))


def decoder_blocks(lm: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a causal LM (``model.layers`` in LLaMA, ``transformer.h`` in GPT-2, ...)."""
    count = lm.config.num_hidden_layers
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"found no list of {count} transformer blocks in {type(lm).__name__}")


def keep_bottom_layers(model: nn.Module, layers: int | None, key: str = "build.backbone_layers") -> None:
    """Drop every transformer block of ``model`` above the bottom ``layers`` (and say so in its config, which is
    saved with it); None keeps them all. The final norm and the head then read the last kept block."""
    if layers is None:
        return
    blocks = decoder_blocks(model)
    if not 1 <= layers <= len(blocks):
        raise ValueError(f"{key} is {layers}; the model has {len(blocks)} layers")
    del blocks[layers:]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]


def freeze_bottom_layers(lm: nn.Module, num_layers_unfrozen: int | None, key: str = "ppo.num_layers_unfrozen") -> None:
    """Train only the top ``num_layers_unfrozen`` blocks (and what follows them); None trains everything.

    As trlX: the input embeddings and the lower blocks are frozen, and so is the
    output projection when it is tied to the input embeddings.
    """
    if num_layers_unfrozen is None:
        return
    blocks = decoder_blocks(lm)
    if not 1 <= num_layers_unfrozen <= len(blocks):
        raise ValueError(f"{key} is {num_layers_unfrozen}; the model has {len(blocks)} layers")
    lm.get_input_embeddings().requires_grad_(False)
    for block in list(blocks)[: len(blocks) - num_layers_unfrozen]:
        block.requires_grad_(False)


class FrozenReference:
    """The reference rho: a frozen snapshot of the parameters the policy trains, the others shared with it.

    Built before training, so it is rho exactly. :meth:`logits` runs the policy's
    LM with the snapshot in place of the trained parameters. For an LM with LoRA
    adapters (build it after adding them) it holds nothing: rho is the LM with
    its adapters off, whose base weights never train.
    """

    def __init__(self, lm: nn.Module):
        self.snapshot = {} if has_lora(lm) else {name: p.detach().clone() for name, p in lm.named_parameters()
                                                 if p.requires_grad}

    @property
    def parameter_count(self) -> int:
        """Numbers the reference holds of its own (the rest it shares with the policy)."""
        return sum(p.numel() for p in self.snapshot.values())

    @torch.no_grad()
    def lm_logits(self, lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(n, L, V) logits of rho on (n, L) inputs: ``lm`` (the policy being trained) run with the snapshot."""
        with adapters_disabled(lm):
            output = functional_call(lm, self.snapshot, args=(), kwargs={"input_ids": input_ids,
                                                                         "attention_mask": attention_mask},
                                     strict=False)
        return output.logits

    def logits(self, policy: CausalLMWithValueHead, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> torch.Tensor:
        """(n, L, V) logits of rho on (n, L) inputs, at the policy's temperature (so KL compares like with like)."""
        return self.lm_logits(policy.lm, input_ids, attention_mask) / policy.temperature
