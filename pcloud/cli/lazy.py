"""Subcommands whose modules are imported only when one of them is run or listed.

Click documents this pattern ("lazily loading subcommands"); here it sits on Typer's
own group. Importing every subcommand's module (the server, the thumbnailer, psutil,
Google sign-in ...) was a tenth of a second of each command's start: a third of an
incremental `pcloud backup`.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """A Typer group that also offers `lazy_commands` (name -> "module:attribute", the
    attribute a Typer app or a command function), listed first in their order."""

    lazy_commands: ClassVar[dict[str, str]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._loaded: dict[str, Any] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.lazy_commands, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self._loaded:
            module_name, attribute = target.split(":")
            found = getattr(importlib.import_module(module_name), attribute)
            self._loaded[cmd_name] = self._command(cmd_name, found)
        return self._loaded[cmd_name]

    def _command(self, name: str, found: Any) -> Any:
        if isinstance(found, typer.Typer):
            command = typer.main.get_command(found)
        else:
            single = typer.Typer(add_completion=False, rich_markup_mode=self.rich_markup_mode)
            single.command(name)(found)
            command = typer.main.get_command(single)
        command.name = name
        return command
