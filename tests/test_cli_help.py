"""`pcloud ... --help` as a person reads it: flags that take no value show none, arguments
in capitals, every description whole, and serve's defaults those of the OPTIONS table.

Typer's rendering changes between releases (0.27 writes arguments as `{username}`, 0.29
every flag as `--dry-run <bool>`): pyproject.toml pins the release these tests pass with.
"""

from __future__ import annotations

import inspect

import pytest
import typer

from pcloud.cli import app as cli_app
from pcloud.cli.serve import FLAGS
from pcloud.config import option_for

WIDE = {"COLUMNS": "250"}  # wide enough that no description of ours needs two lines


def every_command(group=None, path=()):
    """(path, command) for the group and every command under it."""
    group = group or typer.main.get_command(cli_app)
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from (
            every_command(command, (*path, name))
            if hasattr(command, "commands")
            else iter([((*path, name), command)])
        )


COMMANDS = [path for path, _command in every_command()]


def rendered_help(runner, path, env=WIDE) -> str:
    result = runner.invoke(*path, "--help", env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "pcloud")
def test_flags_take_no_value_and_arguments_are_in_capitals(runner, path):
    shown = rendered_help(runner, path)
    assert "<bool>" not in shown and "<str>" not in shown and "<int>" not in shown
    assert "{" not in shown, shown
    usage = next(line for line in shown.splitlines() if "Usage:" in line)
    assert usage.split("[OPTIONS]", 1)[1].strip() == usage.split("[OPTIONS]", 1)[1].upper().strip()


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "pcloud")
def test_each_description_is_whole_not_broken_where_the_source_breaks_it(runner, path):
    _path, command = next(item for item in every_command() if item[0] == path)
    if not command.help:
        return
    # Markdown shows `code` without its backticks
    description = " ".join(inspect.cleandoc(command.help).replace("`", "").split())
    shown = " ".join(line.strip(" │") for line in rendered_help(runner, path).splitlines())
    assert description in " ".join(shown.split()), shown
    for line in rendered_help(runner, path).splitlines():  # one paragraph, one line
        if description[:40] in line:
            assert description in line, line


def test_the_group_listing_shows_whole_descriptions(runner):
    shown = rendered_help(runner, ("files",))
    assert (
        "Find blobs no file points to, files whose blob is missing, abandoned partial uploads "
        "and expired resumable uploads; remove them unless --dry-run." in shown
    )


def test_serve_help_shows_every_default_from_the_options_table(runner):
    shown = rendered_help(runner, ("serve",))
    for field, flag in FLAGS.items():
        option = option_for(field)
        line = next(line for line in shown.splitlines() if flag in line)
        assert option.env in shown
        assert f"[default: {option.default}]" in shown, (flag, line)


def test_square_brackets_in_help_are_text_not_markup(runner):
    shown = rendered_help(runner, ("files", "gc"))
    assert "[default: 1h]" in shown
