"""Running the Flask app under waitress, in one process or several.

Waitress reads each request body completely (spooling it to a temporary file) before the
app runs, reads the socket 8 KiB at a time, answers its own errors in plain text and
sends files through Python. pcloud's connection (connection.py) hands an upload's body,
piece by piece as it arrives, to a receiver that puts it where it belongs in the store
(pcloud.api.bodies); refuses a body larger than the upload limit from its Content-Length,
before any byte of it is read; answers errors as JSON; and sends file bodies through
sendfile(2). Within a worker, quick requests run in the event loop's own thread and the
rest in waitress's threads (loop.py). build.py puts these together into a waitress server.

One Python process runs one thread at a time, so `pcloud serve` forks a few worker
processes (one per core by default) that share the listening socket, as gunicorn does
(workers.py). Each worker opens its own database connections after the fork.
"""

from pcloud.server.build import build_server
from pcloud.server.workers import listen, run, run_worker, url_of

__all__ = ["build_server", "listen", "run", "run_worker", "url_of"]
