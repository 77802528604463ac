"""pcloud's errors, as WsgiDAV's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from wsgidav.dav_error import DAVError

from pcloud.errors import PcloudError


@contextlib.contextmanager
def as_dav_errors() -> Iterator[None]:
    """A PcloudError from a service, as the DAVError of its status and message (which
    WsgiDAV answers with; any other exception would be its 500)."""
    try:
        yield
    except PcloudError as error:
        raise DAVError(error.status, context_info=error.message) from None
