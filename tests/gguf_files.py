"""Writing a transformers LLaMA causal LM and its byte-level BPE tokenizer as a GGUF file, the way llama.cpp's
convert_hf_to_gguf.py writes a LLaMA: architecture ``llama``, the ``llama.*`` hyper-parameters, llama.cpp's tensor
names with the q and k projections permuted for its rotary layout, and the tokenizer as ``gpt2`` (byte-level BPE)
tokens, token types, merges and special token ids. For the GGUF import stage's tests
(tests/models/test_model_import.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# A ChatML template like SmolLM2-135M-Instruct's (its markers are plain text to the tiny tokenizer).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# transformers' LLaMA parameter name (inside model.layers.N.) -> llama.cpp's tensor name (inside blk.N.)
LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def permute_for_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """A q or k projection's rows reordered as llama.cpp stores them (convert_hf_to_gguf.py's ``LlamaModel.permute``):
    each head's two rotary halves interleaved."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(model) -> dict[str, np.ndarray]:
    """llama.cpp's name -> float32 array of every weight of a transformers ``LlamaForCausalLM`` (q and k permuted;
    ``output.weight`` only when the output projection is not tied to the embeddings)."""
    config = model.config
    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    tensors = {"token_embd.weight": state["model.embed_tokens.weight"]}
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in LAYER_TENSORS.items():
            weights = state[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weights = permute_for_rotary(weights, config.num_attention_heads)
            elif gguf_name == "attn_k":
                weights = permute_for_rotary(weights, config.num_key_value_heads)
            tensors[f"blk.{layer}.{gguf_name}.weight"] = weights
    tensors["output_norm.weight"] = state["model.norm.weight"]
    if not config.tie_word_embeddings:
        tensors["output.weight"] = state["lm_head.weight"]
    return tensors


def tokenizer_metadata(tokenizer) -> tuple[list[str], list[int], list[str]]:
    """(tokens in id order, llama.cpp token types, merges as ``"a b"``) of a byte-level BPE tokenizer: its added
    special tokens are CONTROL, the rest NORMAL."""
    from gguf import TokenType

    vocab = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise ValueError("the tokenizer's ids are not 0..n-1")
    special = set(tokenizer.all_special_tokens)
    types = [int(TokenType.CONTROL if token in special else TokenType.NORMAL) for token in tokens]
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]
    return tokens, types, merges


def write_llama_gguf(path: str | Path, model, tokenizer, name: str = "tiny-llama", chat_template: str | None = None,
                     quantise: str | None = None) -> Path:
    """Write ``model`` (a ``LlamaForCausalLM``) and ``tokenizer`` (byte-level BPE) as the GGUF file ``path``:
    float32 tensors (file type ALL_F32), or with ``quantise`` (a ``GGMLQuantizationType`` name such as Q8_0 or
    Q4_1) every 2-D weight quantised with gguf's quants module (file type MOSTLY_<name>), the norms float32 as
    llama.cpp keeps them."""
    import gguf

    qtype = gguf.GGMLQuantizationType[quantise] if quantise else None

    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_license("apache-2.0")  # as SmolLM2's file says it
    writer.add_file_type(int(gguf.LlamaFileType[f"MOSTLY_{quantise}"] if quantise else gguf.LlamaFileType.ALL_F32))
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    if quantise:
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types, merges = tokenizer_metadata(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    for tensor_name, weights in gguf_tensors(model).items():
        if qtype is not None and weights.ndim == 2:
            writer.add_tensor(tensor_name, gguf.quants.quantize(weights, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(tensor_name, np.ascontiguousarray(weights, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)
