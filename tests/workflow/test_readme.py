"""Every command line of the README works as typed: make targets exist, Snakemake commands plan without error."""

import re
import shlex
import subprocess

import pytest
from snakemake.cli import parse_args

from workflow_helpers import REPO, SNAKEMAKE

pytestmark = pytest.mark.workflow  # every README command, planned by real Snakemake

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
        # The same arguments as a dry run (the profile's executor included), from the repository root. A report
        # needs a finished run: its command is planned without --report=PATH (the parser test checks PATH).
        words = [word for word in words if not word.startswith("--report=")]
        result = subprocess.run([str(SNAKEMAKE), *words[1:], "-n", "--quiet", "rules"], cwd=REPO,
                                capture_output=True, text=True, timeout=300,
                                env={"HF_HUB_OFFLINE": "1", "PATH": f"{SNAKEMAKE.parent}:/usr/bin:/bin"})
    else:
        result = subprocess.run([str(SNAKEMAKE.parent / "python"), *words[1:], "--help"], cwd=REPO,
                                capture_output=True, text=True)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


def snakemake_commands() -> list[str]:
    return [command for command in readme_commands() if shlex.split(command)[0].endswith("snakemake")]


@pytest.mark.parametrize("command", snakemake_commands())
def test_readme_snakemake_command_parses_as_meant(command, monkeypatch):
    # Snakemake's own parser, profile included: every path on the line is a target (an option that takes
    # several values, such as --configfile or --forcerun, must not swallow one), and the config is the one meant.
    monkeypatch.chdir(REPO)  # where `--profile slurm` is found
    words = shlex.split(command)
    _, args = parse_args(words[1:])
    paths = [word for word in words[1:] if not word.startswith("-") and "/" in word]
    assert sorted(args.targets) == sorted(paths), command
    configfiles = [word.split("=", 1)[1] for word in words if word.startswith("--configfile=")]
    assert "--configfile" not in words, "write --configfile=FILE: the space form takes the targets too"
    reports = [word.split("=", 1)[1] for word in words if word.startswith("--report=")]
    assert str(args.report) == reports[0] if reports else args.report is None
    if "--profile" in words:
        assert args.executor == "slurm"
        assert [str(path) for path in args.configfile] == (configfiles or ["config/paper.yaml"])
    else:
        assert [str(path) for path in args.configfile or []] == configfiles


def test_the_parser_check_catches_a_swallowed_target(monkeypatch):
    # What the test above guards against: the space form takes the target for a config file.
    monkeypatch.chdir(REPO)
    _, args = parse_args(["--profile", "slurm", "--configfile", "config/paper.yaml", "results/table6.csv"])
    assert not args.targets and [str(p) for p in args.configfile] == ["config/paper.yaml", "results/table6.csv"]
