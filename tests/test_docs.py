"""The README tells the truth: its test command is what CI runs, its settings are real."""

from __future__ import annotations

import re
from pathlib import Path

from pcloud.config import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", README)


def test_the_readme_starts_with_the_serve_and_the_test_command():
    serve_command, test_command = readme_commands()[:2]
    assert serve_command.endswith("pcloud serve")
    assert "pytest" in test_command


def test_ci_runs_the_readmes_test_command_verbatim():
    test_command = readme_commands()[1]
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci_script.splitlines()


def test_ci_and_developers_run_the_same_documented_check():
    ci_script = (ROOT / ".ci" / "run").read_text()
    check_script = (ROOT / ".ci" / "check").read_text()
    assert "bash .ci/check lint types postgresql" in ci_script.splitlines()
    assert ".ci/check " in README and ".ci/check all" in README
    for tool in ('ruff" check', 'ruff" format --check', 'mypy"', "-m pytest"):
        assert tool in check_script, tool


def test_every_setting_is_documented_in_the_readme():
    for option in OPTIONS:
        assert f"`{option.env}`" in README, f"{option.env} is missing from the README"
