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
    patterns = ["src/**/*.py", "workflow/**/*.py", "workflow/**/*.smk", "tests/*.py", "benchmarks/*.py",
                "studies/*.py", "Snakefile"]
    return sorted({path for pattern in patterns for path in REPO.glob(pattern)})


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_no_source_file_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def test_docstring_references_resolve():
    # :func:`rrhf.x.y` and :mod:`rrhf.x` in the library name things that exist (they did not after a move).
    broken = []
    for name in MODULES:
        for reference in re.findall(r":(?:func|mod|class|meth|data):`(rrhf(?:\.\w+)+)`", module_file(name).read_text()):
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
    missing = [name for name in MODULES if f"`{module_file(name).relative_to(SOURCE / 'rrhf')}`" not in layout]
    assert missing == []
