"""The documents: the configuration reference is the schema's, the README stays a short guide, links resolve."""

import re

import pytest

from rrhf.config.reference import OUTPUT, reference
from workflow_helpers import REPO

DOCUMENTS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_configuration_reference_is_written_from_the_schema():
    assert OUTPUT == REPO / "config" / "README.md"
    assert OUTPUT.read_text() == reference(), "config/README.md is out of date: python -m rrhf.config.reference --write"


def test_the_reference_lists_every_key_of_the_tiny_config():
    import yaml

    text = OUTPUT.read_text()

    def keys(node, prefix=""):
        for name, value in node.items():
            yield f"{prefix}{name}"
            if isinstance(value, dict) and name not in ("datasets", "models", "policies", "settings", "rules",
                                                        "table_settings", "samplers", "variants"):
                yield from keys(value, f"{prefix}{name}.")

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key in keys(config):
        if "." not in key:
            assert f'<a id="{key}"></a>' in text, key  # each top-level key has its section
        else:  # in its block's section (`kl.controller` under ppo), or in a shared definition's (`epochs`)
            relative, last = key.split(".", 1)[1], key.split(".")[-1]
            assert f"`{relative}`" in text or f"`{last}`" in text, key


def test_the_readme_is_a_short_guide():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for section in ("## Two commands", "## On a GPU cluster (SLURM)", "## Read more"):
        assert section in readme


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_links_between_documents_resolve(document):
    text = document.read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for target in re.findall(r"\]\(([^)#\s]+)?(?:#([^)\s]+))?\)", text):
        path, anchor = target
        if path.startswith(("http://", "https://")):
            continue
        if path:
            assert (document.parent / path).exists(), f"{document.name}: {path}"
        elif anchor:
            assert anchor in anchors, f"{document.name}: #{anchor}"


def test_documents_name_files_and_modules_that_exist():
    # A path written in backticks (`src/rrhf/...`, `benchmarks/x.py`, `rrhf.x.y`) exists after every move.
    missing = []
    for document in DOCUMENTS:
        for path in re.findall(r"`((?:src|workflow|config|benchmarks|studies|tests|envs|docs)/[\w/.-]+\.\w+)`",
                               document.read_text()):
            if not (REPO / path).exists():
                missing.append(f"{document.name}: {path}")
        for module in re.findall(r"`(rrhf(?:\.\w+)+)`", document.read_text()):
            parts = module.split(".")
            found = any((REPO / "src" / "/".join(parts[:cut])).with_suffix(".py").exists()
                        or (REPO / "src" / "/".join(parts[:cut])).is_dir() for cut in range(len(parts), 1, -1))
            config_key = parts[1] in ("training", "prompt_sharing", "rank_weight", "length_penalty", "ft_reduction",
                                      "max_tokens_per_forward", "reward_during_training", "lora")
            if not found and not config_key:
                missing.append(f"{document.name}: {module}")
    assert missing == []
