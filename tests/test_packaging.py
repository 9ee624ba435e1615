"""The package as others depend on it: pyproject.toml's declared dependencies, requirements.lock (every package of
every extra, pinned), the conda environment of the jobs, the licence and the citation file."""

import ast
import importlib.metadata
import re
import shlex
import sys
import tomllib

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from workflow_helpers import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK_FILE = REPO / "requirements.lock"


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {name: (version, what it is there for)}: pip-compile's ``# via`` lines."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in LOCK_FILE.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line):
            name = canonicalize_name(match.group(1))
            entries[name] = (match.group(2), [])
        elif name and (match := re.fullmatch(r"\s+#\s+(?:via\s+)?(\S.*)", line)) and match.group(1) != "via":
            entries[name][1].append(match.group(1).strip())
        elif not line.strip():
            name = None
    return entries


LOCK = lock_entries()


def declared() -> dict[str, list[Requirement]]:
    """pyproject.toml's requirements, by extra ("" for the dependencies every install gets)."""
    groups = {"": PROJECT["dependencies"], **PROJECT["optional-dependencies"]}
    return {extra: [Requirement(text) for text in texts] for extra, texts in groups.items()}


def test_every_declared_requirement_is_pinned_in_the_lock_within_its_range():
    for extra, requirements in declared().items():
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in LOCK, f"{requirement} ({extra or 'dependencies'}) is not in requirements.lock: make lock"
            assert LOCK[name][0] in requirement.specifier, \
                f"requirements.lock pins {name}=={LOCK[name][0]}, outside pyproject.toml's {requirement}: make lock"


def test_the_lock_pins_nothing_that_nothing_asks_for():
    direct = {canonicalize_name(r.name) for requirements in declared().values() for r in requirements}
    for name, (version, via) in LOCK.items():
        assert via, f"requirements.lock: {name}=={version} says nothing about what it is there for"
        for parent in via:
            if parent == "rrhf (pyproject.toml)":
                assert name in direct, f"requirements.lock: {name} is there for rrhf, which no longer declares it"
            elif parent != "-c constraints.txt":
                assert canonicalize_name(parent) in LOCK, f"requirements.lock: {name} is there for {parent}, unpinned"


def test_the_lock_is_whole_for_every_installed_package():
    """Each locked package that is installed asks only for packages the lock pins (its extras' too, where the lock
    takes them): a package the set-up would pull in unpinned fails here."""
    environment = default_environment()
    checked = 0
    for name in LOCK:
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        checked += 1
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({**environment, "extra": ""}):
                continue
            assert canonicalize_name(requirement.name) in LOCK, \
                f"{name} asks for {requirement}, which requirements.lock does not pin: make lock"
    assert checked > 50


def test_the_environment_the_tests_run_in_is_the_locks():
    """make setup installs from the lock: every locked package that is installed has the lock's version (a build
    label such as torch's +cpu aside)."""
    for name, (version, _) in LOCK.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert Version(installed).public == Version(version).public, \
            f"{name} {installed} is installed, requirements.lock pins {version}: make setup"


def test_the_lock_admits_any_build_of_torch():
    """No build label (+cpu, +cu128): the CUDA build of the same release meets the pin on a cluster."""
    assert "+" not in LOCK["torch"][0]
    assert Version(LOCK["torch"][0]) == Version((REPO / "constraints.txt").read_text().split("==")[1].strip())


def test_the_lock_was_written_by_make_lock():
    """The lock's header command is the Makefile's: the documented command writes the committed file."""
    header = re.search(r"^#\s+(pip-compile .*)$", LOCK_FILE.read_text(), re.M).group(1)
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")
    recipe = re.search(r"\$\(BIN\)/pip-compile (.*)", makefile).group(1)
    words = [word for word in shlex.split(recipe) if not word.startswith("$(")]
    assert sorted(shlex.split(header)[1:]) == sorted(word for word in words if word != "--quiet")
    assert 'pip install --quiet -c constraints.txt -c requirements.lock -e ".[workflow,test]"' in makefile


def third_party_imports() -> dict[str, set[str]]:
    """Distributions imported by the library and the job scripts -> the files importing them."""
    distributions = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in [*(REPO / "src" / "rrhf").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "rrhf":
                    continue
                # An optional package that is not installed here (gguf before `make test` installs it) is named
                # as it is imported.
                for distribution in distributions.get(top, [top]):
                    found.setdefault(canonicalize_name(distribution), set()).add(str(path.relative_to(REPO)))
    return found


def test_every_import_of_the_library_is_declared():
    """`pip install .` gives a library that imports: each package it imports is a dependency (or, for gguf,
    the extra that needs it)."""
    imports = third_party_imports()
    assert {"torch", "jsonschema", "pyyaml", "numpy", "huggingface-hub"} <= set(imports)
    core = {canonicalize_name(r.name) for r in declared()[""]}
    optional = {canonicalize_name(r.name): extra for extra, rs in declared().items() if extra for r in rs}
    for distribution, files in imports.items():
        assert distribution in core or optional.get(distribution) == "real", \
            f"{sorted(files)[0]} imports {distribution}, which pyproject.toml does not declare"


def test_the_jobs_conda_environment_lists_what_the_library_imports_at_the_locks_versions():
    environment = yaml.safe_load((REPO / "envs" / "rrhf.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    pinned = {canonicalize_name(name): version for name, version in (line.split("==") for line in pip)}
    for distribution, files in third_party_imports().items():
        assert distribution in pinned, f"envs/rrhf.yaml lacks {distribution}, which {sorted(files)[0]} imports"
    for name, version in pinned.items():
        assert LOCK[name][0] == version, f"envs/rrhf.yaml pins {name}=={version}, requirements.lock {LOCK[name][0]}"
    # Everything the library's own dependencies are (tensorboard is the default tracker, through accelerate).
    assert {canonicalize_name(r.name) for r in declared()[""]} <= set(pinned)


def test_the_licence_is_apache_2():
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text and "END OF TERMS" in text
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]


def test_the_citation_file_cites_the_project_and_the_paper():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    # What CFF 1.2.0 requires, and what makes it this project's.
    assert citation["cff-version"] == "1.2.0" and citation["message"] and citation["authors"]
    assert citation["version"] == PROJECT["version"] and citation["license"] == PROJECT["license"]
    paper = next(reference for reference in citation["references"] if "RRHF" in reference["title"])
    assert [author["family-names"] for author in paper["authors"]][:2] == ["Yuan", "Yuan"]
    assert paper["year"] == 2023 and "2304.05302" in paper["url"]
    readme = (REPO / "README.md").read_text()
    assert "## How to cite" in readme and "CITATION.cff" in readme and "2304.05302" in readme


def test_the_tracking_extra_brings_wandb_and_mlflow():
    assert {canonicalize_name(r.name) for r in declared()["tracking"]} == {"wandb", "mlflow"}


SMOKE = """
import importlib, pkgutil, sys, torch, rrhf
from rrhf.losses import rrhf_loss
from rrhf.config.schema import block_defaults
assert rrhf.__path__[0].startswith(sys.argv[1]), rrhf.__path__
for module in pkgutil.walk_packages(rrhf.__path__, "rrhf."):
    importlib.import_module(module.name)
defaults = block_defaults("rrhf")
# Two prompts, three responses of five tokens: the best-rewarded response is the least likely, so ranking costs.
logprobs = -torch.tensor([1.0, 2.0, 3.0])[None, :, None].expand(2, 3, 5)
loss, rank, ft = rrhf_loss(logprobs, torch.ones(2, 3, 5), torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.5, 1.0]]),
                           rank_weight=defaults["rank_weight"])
assert torch.isfinite(loss) and float(rank) > 0 and float(ft) > 0
print("ok")
"""


@pytest.mark.slow  # builds a wheel and installs it
def test_the_built_wheel_is_a_working_library(tmp_path):
    """What `pip install .` installs: the wheel has the schema (the defaults of every block) and the pages'
    scripts, declares pyproject.toml's dependencies, and works from where it is installed, not from src/."""
    import subprocess
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(REPO)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("rrhf-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
        archive.extractall(tmp_path / "installed")
    assert {"rrhf/config/schema.yaml", "rrhf/plan/known_models.yaml", "rrhf/studies/fine_grained/annotation_page.js",
            "rrhf/studies/human_evaluation/comparison_page.js"} <= names
    assert "License-Expression: Apache-2.0" in metadata
    requires = {Requirement(line.split(": ", 1)[1]) for line in metadata.splitlines()
                if line.startswith("Requires-Dist")}
    by_extra: dict[str, set[str]] = {}
    for requirement in requires:
        extra = re.search(r'extra == "([^"]+)"', str(requirement.marker)).group(1) if requirement.marker else ""
        by_extra.setdefault(extra, set()).add(canonicalize_name(requirement.name) + str(requirement.specifier))
    assert by_extra == {extra: {canonicalize_name(r.name) + str(r.specifier) for r in group}
                        for extra, group in declared().items()}
    installed = tmp_path / "installed"
    result = subprocess.run([sys.executable, "-c", SMOKE, str(installed)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.stdout.strip() == "ok", result.stderr[-3000:]
