"""Every command line of the README works as typed: make targets exist, Snakemake commands plan without error."""

import re
import shlex
import shutil
import subprocess

import pytest

from workflow_helpers import REPO, SNAKEMAKE

COMMAND_START = ("make ", ".venv/bin/snakemake ", "snakemake ", ".venv/bin/python ")


def readme_commands() -> list[str]:
    """Indented README lines that start with a command, without their trailing comment."""
    commands = []
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("    ") and line.strip().startswith(COMMAND_START):
            commands.append(re.sub(r"\s+#.*$", "", line.strip()))
    return commands


def test_the_readme_has_its_commands():
    commands = readme_commands()
    assert {"make run", "make test"} <= set(commands)
    assert any("--profile slurm" in command for command in commands)


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_works_as_typed(command):
    words = shlex.split(command)
    if words[0] == "make":
        # -n: the target exists and its recipe expands; nothing is run.
        result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
    elif words[0].endswith("snakemake"):
        # The same arguments as a dry run (the profile's executor included), from the repository root.
        result = subprocess.run([str(SNAKEMAKE), *words[1:], "-n", "--quiet", "rules"], cwd=REPO,
                                capture_output=True, text=True, timeout=300,
                                env={"HF_HUB_OFFLINE": "1", "PATH": f"{SNAKEMAKE.parent}:/usr/bin:/bin"})
    else:
        result = subprocess.run([str(SNAKEMAKE.parent / "python"), *words[1:], "--help"], cwd=REPO,
                                capture_output=True, text=True)
    if "--profile" in words and shutil.which("conda") is None and "conda info" in result.stdout + result.stderr:
        # The cluster profile deploys software with conda, absent here: the arguments parsed and the DAG was
        # being built when Snakemake asked for conda.
        assert "Building DAG of jobs" in result.stdout + result.stderr
        return
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
