"""pcloud.server is fenced: it knows no routes and no pcloud.api, talks to the app only
through pcloud.serving, and relies on waitress only where waitress_internals.py says, at
the exact waitress version it was written against."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

from pcloud.server import waitress_internals

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "pcloud" / "server"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_the_server_imports_nothing_from_the_api():
    for path in SERVER.glob("*.py"):
        reaching = [name for name in imported_modules(path) if name.startswith("pcloud.api")]
        assert not reaching, f"{path.name} imports {reaching}"


def test_the_interface_between_server_and_app_imports_nothing():
    assert imported_modules(ROOT / "pcloud" / "serving.py") == set()


def test_the_server_knows_no_route():
    for path in SERVER.glob("*.py"):
        assert "tus" not in path.read_text(), f"{path.name} mentions tus"


def test_waitress_is_pinned_to_the_version_the_server_was_written_against():
    pyproject = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"waitress==([^"]+)"', pyproject)
    assert pin and pin.group(1) == waitress_internals.WAITRESS_VERSION
    assert importlib.metadata.version("waitress") == waitress_internals.WAITRESS_VERSION


def test_waitress_internals_are_as_pcloud_server_was_written_against():
    """Fails after a waitress upgrade that changed any internal pcloud.server relies on:
    re-check each one named, then record its new fingerprint in waitress_internals.py."""
    changed = [
        f"{internal.name} (used: {internal.use}) -> re-check {internal.recheck}; "
        f"new fingerprint {waitress_internals.fingerprint_of(internal.name)}"
        for internal in waitress_internals.INTERNALS
        if waitress_internals.fingerprint_of(internal.name) != internal.fingerprint
    ]
    assert not changed, "waitress changed under pcloud.server:\n" + "\n".join(changed)


def test_every_waitress_internal_the_server_overrides_is_listed():
    """Each method a pcloud.server class overrides from a waitress class is in the list."""
    from pcloud.server.build import PcloudServer
    from pcloud.server.connection import (
        JsonErrorTask,
        KeepAliveTask,
        PcloudChannel,
        PcloudRequestParser,
    )

    listed = {internal.name for internal in waitress_internals.INTERNALS}
    missing = []
    for ours in (PcloudServer, PcloudChannel, PcloudRequestParser, KeepAliveTask, JsonErrorTask):
        for name in vars(ours):
            if name.startswith("__") and name != "__init__":
                continue
            for base in ours.__mro__[1:]:
                if base.__module__.startswith("waitress") and name in vars(base):
                    if callable(vars(base)[name]) and not isinstance(vars(base)[name], type):
                        dotted = f"{base.__module__}.{base.__qualname__}.{name}"
                        if dotted not in listed:
                            missing.append(dotted)
                    break
    assert not missing, f"overridden but not in waitress_internals.INTERNALS: {missing}"
