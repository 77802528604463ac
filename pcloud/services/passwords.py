"""Password hashes, by werkzeug.security, imported on first use: werkzeug's package
imports its server and test client, 25 ms of every CLI command's start that needs
neither."""

from __future__ import annotations


def generate_password_hash(password: str, method: str) -> str:
    from werkzeug.security import generate_password_hash as generate

    return generate(password, method=method)


def check_password_hash(password_hash: str, password: str) -> bool:
    from werkzeug.security import check_password_hash as check

    return check(password_hash, password)
