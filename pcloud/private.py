"""Files and folders only their owner may read: the data folder, the database, the secret.

The database holds emails, password hashes and IP addresses; the secret key signs every
token. Each is made private when pcloud creates it, and tightened when an older pcloud
left it readable by others.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def make_private_folder(path: Path) -> None:
    """Create the folder (and its parents) if missing; leave it readable by its owner only.

    Raises OSError when it cannot be created."""
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    tighten(path, PRIVATE_FOLDER)


def make_private_file(path: Path) -> None:
    """Create the file empty if missing (so that whatever opens it next finds mode 0600,
    as SQLite does for its -wal and -shm files, which take the database's mode); tighten
    it if it exists.

    Raises OSError when it cannot be created."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    os.close(descriptor)
    tighten(path, PRIVATE_FILE)


def tighten(path: Path, mode: int = PRIVATE_FILE) -> None:
    """Take away group and other access, if we own the path (someone else's is theirs)."""
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(stat.S_IMODE(info.st_mode) & ~0o077 & 0o7777 | (mode & 0o700))
