"""The library's shape: defaults only in the schema, no import cycle, neutral homes for shared helpers, small files,
docstring references that resolve, a layout document that names every module."""

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import tokenize

import pytest

import rrhf
from rrhf.config.schema import leaf_defaults
from workflow_helpers import REPO

SOURCE = REPO / "src"
MODULES = sorted(info.name for info in pkgutil.walk_packages(rrhf.__path__, "rrhf."))
# Parameters named like a config key whose default is not that key's, each with the reason.
NOT_CONFIG_DEFAULTS = {
    ("rrhf.models.loading", "load_causal_lm", "device"): "trainers load on the CPU; accelerate places the model",
    ("rrhf.models.loading", "load_causal_lm", "dtype"): "trainers keep float32 weights (mixed precision is apart)",
    ("rrhf.models.loading", "load_reward_model", "device"): "as load_causal_lm; inference jobs pass config device",
    ("rrhf.models.loading", "load_reward_model", "dtype"): "as load_causal_lm; inference jobs pass precision.dtype",
    ("rrhf.models.loading", "resolve_dtype", "device"): "the device a dtype is chosen for, not config device",
    ("rrhf.models.value_head_reward", "load_value_head_reward_model", "dtype"): "a torch dtype, resolved by the caller",
    ("rrhf.batching.prompt_sharing", "block_attention_mask", "dtype"): "the dtype of an additive mask, not a config",
    ("rrhf.plan.plan", "Plan.ppo_for", "setting"): "a PPO setting's name (PPO or PPO-noKL), not resampling.setting",
    ("rrhf.studies.fine_grained.feedback_collection", "collect_feedback", "max_prompt_tokens"):
        "fine-grained feedback's prompt budget, ppo.training.max_length minus its max_new_tokens (the rule passes "
        "it), not data.max_prompt_tokens",
}


def module_file(name):
    path = SOURCE / name.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def defaults_of(module):
    """(qualified name, parameter or field name, default) of every default in a module's own functions, methods
    and dataclass fields."""
    found = []
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        functions = [(name, obj)] if inspect.isfunction(obj) else []
        if inspect.isclass(obj):
            functions += [(f"{name}.{method}", f) for method, f in vars(obj).items() if inspect.isfunction(f)]
            if dataclasses.is_dataclass(obj):
                found += [(name, f.name, f.default) for f in dataclasses.fields(obj)
                          if f.default is not dataclasses.MISSING]
        for qualified, function in functions:
            found += [(qualified, p.name, p.default) for p in inspect.signature(function).parameters.values()
                      if p.default is not inspect.Parameter.empty]
    return found


def test_no_library_default_disagrees_with_the_schema():
    schema = leaf_defaults()
    disagreeing = []
    for name in MODULES:
        for qualified, parameter, default in defaults_of(importlib.import_module(name)):
            if parameter in schema and default is not None and default not in schema[parameter] \
                    and (name, qualified, parameter) not in NOT_CONFIG_DEFAULTS:
                disagreeing.append(f"{name}.{qualified}({parameter}={default!r}): the schema says {schema[parameter]}")
    assert disagreeing == []
    # The test can fail: the default that once disagreed (online RRHF's ft_reduction) would be found.
    assert "sum" not in schema["ft_reduction"] and "token_mean" in schema["ft_reduction"]


def imports(name, type_checking=False):
    """The rrhf modules a module imports (at any depth of its code, but not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(module_file(name).read_text())
    skipped = {id(node) for node in ast.walk(tree) if isinstance(node, ast.If) and not type_checking
               and "TYPE_CHECKING" in ast.unparse(node.test) for node in ast.walk(node)} - {id(tree)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rrhf"):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("rrhf")}
    return found & set(MODULES) - {name}


def test_no_import_cycle():
    graph = {name: imports(name) for name in MODULES}
    cycles, state, stack = [], {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(stack[stack.index(imported):] + [imported])
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module)
    assert cycles == []


def test_shared_helpers_live_in_neutral_homes():
    # A stage gets padding, turn cutting or batching from rrhf.padding, rrhf.text, rrhf.batching, never from a
    # trainer or from the evaluation; the trainers' own modules are imported by the launcher only.
    trainers = {"rrhf.training.rrhf", "rrhf.training.online_rrhf", "rrhf.training.ppo",
                "rrhf.training.language_model", "rrhf.training.reward_model"}
    wrong = []
    for name in MODULES:
        for imported in imports(name, type_checking=True):
            if imported in trainers and name != "rrhf.training.launch":
                wrong.append(f"{name} imports the trainer {imported}")
            if imported.startswith("rrhf.evaluation") and not name.startswith(("rrhf.evaluation", "rrhf.report")):
                wrong.append(f"{name} imports the evaluation's {imported}")
    assert wrong == []


def test_every_loss_is_in_one_module():
    losses = [name for name in MODULES for node in ast.walk(ast.parse(module_file(name).read_text()))
              if isinstance(node, ast.FunctionDef) and re.fullmatch(r"[a-z_]*_loss", node.name)
              and not node.name.startswith(("make_", "reward_pair", "lm_", "compute_"))]
    assert set(losses) == {"rrhf.losses"}, losses


def test_the_plan_imports_neither_torch_nor_transformers():
    code = ("import sys, rrhf.plan.plan, rrhf.plan.checks, rrhf.config.blocks; "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def source_files():
    patterns = ["src/**/*.py", "workflow/**/*.py", "workflow/**/*.smk", "tests/**/*.py", "benchmarks/*.py",
                "studies/*.py", "Snakefile"]
    return sorted({path for pattern in patterns for path in REPO.glob(pattern)})


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_no_source_file_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def prose(path):
    """The docstrings, strings and comments of a Python file (not its code: ``rrhf.as_config()`` is a call)."""
    with open(path, encoding="utf-8") as source:
        return "\n".join(token.string for token in tokenize.generate_tokens(source.readline)
                         if token.type in (tokenize.COMMENT, tokenize.STRING))


def rrhf_block_keys():
    """The keys of the config's ``rrhf`` block: ``rrhf.length_penalty`` in a docstring is one, not a module."""
    from rrhf.config.schema import load_schema

    return set(load_schema()["properties"]["rrhf"]["properties"])


def test_docstring_references_resolve():
    # rrhf.x.y in the library, in a role (:func:`rrhf.x.y`) or as plain text in a docstring or comment, names
    # something that exists (they did not after a move), or a key of the rrhf config block (rrhf.length_penalty).
    broken, config_keys = [], rrhf_block_keys()
    for name in MODULES:
        for reference in re.findall(r"(?<![\w./])(rrhf(?:\.\w+)+)", prose(module_file(name))):
            reference = reference.rstrip(".")
            if reference.split(".")[1] in config_keys:
                continue
            parts = reference.split(".")
            for cut in range(len(parts), 1, -1):
                if ".".join(parts[:cut]) in MODULES or ".".join(parts[:cut]) == "rrhf":
                    target = importlib.import_module(".".join(parts[:cut]))
                    for attribute in parts[cut:]:
                        target = getattr(target, attribute, None)
                    if target is None:
                        broken.append(f"{name}: {reference}")
                    break
            else:
                broken.append(f"{name}: {reference}")
    assert broken == []


def test_the_layout_document_names_every_module():
    layout = (REPO / "docs" / "architecture.md").read_text()
    missing = [name for name in MODULES if f"`{module_file(name).relative_to(REPO)}`" not in layout]
    assert missing == []


def layer(module):
    """A module's layer: 0 the config's types, 1 the stages and their neutral helpers, 2 the plan of a run,
    3 the studies."""
    return {"config": 0, "plan": 2, "studies": 3}.get(module.split(".")[1], 1)


def test_each_layer_imports_only_the_layers_below_it():
    # The config's types sit below the stages, the plan of a run above them, each study above the plan; a study
    # may read another (the findings read the human evaluation's files), nothing below reads a study.
    upward = [f"{name} imports {imported}" for name in MODULES for imported in imports(name, type_checking=True)
              if layer(imported) > layer(name)]
    assert upward == []
    stages = {name.split(".")[1] for name in MODULES if layer(name) == 1 and name.count(".") > 1}
    assert {"data", "models", "sampling", "scoring", "training", "evaluation", "report"} <= stages
    # The test can fail: the plan, read as a stage, imports the config (below) and a stage (models.sources) only.
    assert layer("rrhf.studies.fine_grained.study") == 3 and layer("rrhf.config.blocks") == 0


def test_every_study_is_one_folder_with_its_plan_and_one_rule_file():
    from rrhf.plan.study import Study
    from rrhf.studies.registry import STUDIES

    folders = sorted(path.name for path in (SOURCE / "rrhf" / "studies").iterdir()
                     if path.is_dir() and path.name != "__pycache__")
    assert sorted(module.__module__.split(".")[2] for module in STUDIES) == folders
    for study in STUDIES:
        assert issubclass(study, Study) and study.__module__.endswith(".study"), study
        folder = study.__module__.split(".")[2]
        assert (REPO / "workflow" / "rules" / f"{folder}.smk").is_file(), folder
        assert f'include: "workflow/rules/{folder}.smk"' in (REPO / "Snakefile").read_text()
    # No module of a study lives outside its folder: a stage's module does not name a study in its file name.
    stray = [name for name in MODULES if layer(name) < 3 and any(
        word in name.rsplit(".", 1)[-1] for word in ("fine_grained", "human", "findings", "overoptimisation"))]
    assert stray == []


def test_no_two_modules_share_a_name_and_no_rule_file_includes_another():
    # Module files only (a package may hold a module of its own name: rrhf.plan.plan); each study folder has its
    # study.py, and may have its config.py, table.py and evaluation.py.
    names = [name.rsplit(".", 1)[-1] for name in MODULES if module_file(name).name != "__init__.py"]
    shared = {name for name in names if names.count(name) > 1} - {"study", "config", "table", "evaluation"}
    assert shared == set()
    includes = [path.name for path in (REPO / "workflow" / "rules").glob("*.smk") if "include:" in path.read_text()]
    assert includes == []
