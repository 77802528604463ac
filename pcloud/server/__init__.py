"""Running the app under waitress, in one process or several; knowing no routes.

The app hands the server one small interface (pcloud.serving): a `previews` callable,
asked when a request's headers are complete, which says who receives the body as it
arrives, whether the view is quick, how large the body may be, or that the request is
refused before its body is read. Over waitress, pcloud's connection (connection.py)
acts on it; answers every error as the API's JSON (answers.py); sends file bodies through
sendfile(2); bounds what each connection may hold (limits.py); and writes the access log
(access_log.py). Within a worker, quick requests run in the event loop's own thread, the
rest in waitress's threads, and the loop waits on thousands of connections through epoll
at the cost of those that changed (loop.py). build.py puts these together. Every
waitress internal relied on is listed, with the reason, in waitress_internals.py.

One Python process runs one thread at a time, so `pcloud serve` forks a few worker
processes (one per core by default) that share the listening socket, as gunicorn does
(workers.py). Each worker opens the app (its database connections) after the fork.
"""

from pcloud.server.build import build_server
from pcloud.server.workers import listen, run, run_worker, url_of

__all__ = ["build_server", "listen", "run", "run_worker", "url_of"]
