"""Every part of waitress's private API that pcloud.server relies on, and why.

Waitress's public API is create_server/serve and its settings; pcloud needs more (bodies
received as they arrive, sendfile, JSON errors, limits, an epoll loop), so it overrides
or calls the internals below. pyproject.toml pins waitress exactly; each entry carries a
fingerprint of the source it was written against (tests/test_waitress_internals.py
checks them all), so that an upgrade fails in one named test saying what to re-check.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass

WAITRESS_VERSION = "3.0.2"


@dataclass(frozen=True)
class Internal:
    name: str  # dotted, from the module: waitress.channel.HTTPChannel._flush_some
    use: str  # what pcloud does with it
    recheck: str  # what to look at again when its source changes
    fingerprint: str  # of its source in WAITRESS_VERSION (see fingerprint_of)


INTERNALS: tuple[Internal, ...] = (
    Internal(
        "waitress.channel.HTTPChannel._flush_some",
        "copied into PcloudChannel._flush_some, with a sendfile(2) branch for file bodies",
        "merge any fix of the original into the copy (connection.py)",
        "fe7a9a752a419402",
    ),
    Internal(
        "waitress.channel.HTTPChannel._flush_outbufs_below_high_watermark",
        "overridden: the event loop, serving a quick request, must not wait for itself",
        "the waiting logic; PcloudChannel._flush_outbufs_below_high_watermark",
        "27a2b75117abd0d7",
    ),
    Internal(
        "waitress.channel.HTTPChannel._flush_exception",
        "called by the override above to flush without waiting",
        "its signature and what it returns",
        "c9f3751ffdb057b7",
    ),
    Internal(
        "waitress.channel.HTTPChannel.write_soon",
        "relied on by build.py's OUTBUF_OVERFLOW: a new buffer once the current one holds "
        "outbuf_high_watermark, so a buffer never holds more than that plus one write",
        "when it starts a new OverflowableBuffer (build.OUTBUF_OVERFLOW must stay above)",
        "20eedb92a8237c47",
    ),
    Internal(
        "waitress.buffers.OverflowableBuffer.append",
        "relied on by build.py's OUTBUF_OVERFLOW: a buffer moves to a temporary file only "
        "past outbuf_overflow",
        "when it moves to a temporary file",
        "c809e391a4e6b5cc",
    ),
    Internal(
        "waitress.channel.HTTPChannel.handle_close",
        "extended: a body still arriving is judged as broken (its receiver's broken())",
        "that self.request still holds the partial request when it runs",
        "8f59b9aaa45566bb",
    ),
    Internal(
        "waitress.channel.HTTPChannel.handle_read",
        "extended: marks the loop's thread, then serves the quick requests the read completed",
        "that received() is still called from here, in the loop thread",
        "5f1fb08c95aa00cc",
    ),
    Internal(
        "waitress.channel.HTTPChannel.received",
        "relied on: makes each request's parser by self.parser_class(self.adj) (a method "
        "in PcloudChannel), hands completed requests to server.add_task",
        "how parsers are made and when requests count as complete",
        "08d6df73fb69da84",
    ),
    Internal(
        "waitress.channel.HTTPChannel.service",
        "relied on: runs error_task_class / task_class; makes a parser for a 500",
        "the task classes' use and parser_class(self.adj)",
        "f73afa13748e1128",
    ),
    Internal(
        "waitress.channel.HTTPChannel.__init__",
        "relied on: creation_time, last_activity, requests, request, outbufs (limits.py)",
        "the attributes limits.ConnectionLimits.maintain reads and sets",
        "a194769af3fd2e35",
    ),
    Internal(
        "waitress.channel.HTTPChannel.add_channel",
        "extended: a new connection is watched by loop.EventLoop",
        "that it still registers the channel in the map and server.active_channels",
        "235de3cdfd2c3e8a",
    ),
    Internal(
        "waitress.channel.HTTPChannel.del_channel",
        "extended: a closed connection leaves loop.EventLoop and the per-address count",
        "that it is still called once, before the socket closes",
        "a018ed85e5e518cd",
    ),
    Internal(
        "waitress.wasyncore.dispatcher.add_channel",
        "extended by PcloudServer: the listening socket is watched by loop.EventLoop",
        "that it still puts the socket in the map",
        "bb7b639a471bc5bb",
    ),
    Internal(
        "waitress.parser.HTTPRequestParser.__init__",
        "extended: the parser also holds the server (its previews) and its first byte's time",
        "its parameters",
        "d43d0602efd291cf",
    ),
    Internal(
        "waitress.channel.HTTPChannel.readable",
        "relied on by loop.EventLoop: a connection waiting only to read has no requests",
        "when a connection reads; EventLoop's idea of one that waits only to read",
        "e4722238ce60c915",
    ),
    Internal(
        "waitress.channel.HTTPChannel.writable",
        "relied on by loop.EventLoop (asked only for connections with something pending)",
        "EventLoop's idea of one that waits only to read",
        "d0cbd4ae1b3ba2a3",
    ),
    Internal(
        "waitress.parser.HTTPRequestParser.received",
        "relied on: after parse_header it reads body_rcv, content_length and "
        "adj.max_request_body_size (which PcloudRequestParser sets from the previews) "
        "and keeps an error set there",
        "the order of those checks (PcloudRequestParser.parse_header)",
        "b466c02de37d4a01",
    ),
    Internal(
        "waitress.parser.HTTPRequestParser.parse_header",
        "extended: asks the app's previews once the headers are parsed",
        "the attributes it sets (command, path, query, headers, chunked, content_length, body_rcv)",
        "c2c093b901782da6",
    ),
    Internal(
        "waitress.receiver.FixedStreamReceiver.__init__",
        "its .buf is replaced by a ReceiverBuffer that hands the body to a receiver",
        "that the body still goes through self.buf.append",
        "f74effe801bcbb98",
    ),
    Internal(
        "waitress.receiver.ChunkedReceiver.__init__",
        "its .buf is replaced, as FixedStreamReceiver's",
        "that the body still goes through self.buf.append",
        "e7da31f88cbd8112",
    ),
    Internal(
        "waitress.task.ErrorTask.execute",
        "called by JsonErrorTask.execute, which first puts the error in JSON form (to_response)",
        "that it still answers with error.to_response(ident) and closes",
        "4abe3262db04d291",
    ),
    Internal(
        "waitress.task.Task.service",
        "wrapped: the access log reads content_bytes_written and start_time after it",
        "those attributes",
        "d96bb4019c488cca",
    ),
    Internal(
        "waitress.task.Task.build_response_header",
        "wrapped by KeepAliveTask: keeps a connection after 204/304; closes it when draining",
        "when it closes the connection (set_close_on_finish)",
        "2cf70b88816fabc1",
    ),
    Internal(
        "waitress.task.Task.set_close_on_finish",
        "overridden by KeepAliveTask (see build_response_header)",
        "what it sets",
        "90433a0ffcaf34a7",
    ),
    Internal(
        "waitress.task.WSGITask.get_environment",
        "extended: adds the received body and the previews' environ entries",
        "that it still caches the environ in self.environ",
        "3bb57be6c7db4e59",
    ),
    Internal(
        "waitress.server.BaseWSGIServer.__init__",
        "called with _sock, bind_socket=False, sockinfo and dispatcher: one server on the "
        "listening socket `pcloud serve` made",
        "those parameters",
        "e70a16b5b63c0a98",
    ),
    Internal(
        "waitress.server.BaseWSGIServer.handle_accept",
        "replaced by PcloudServer.handle_accept: the per-address limit before a channel",
        "merge any fix of the original into the copy (build.py)",
        "69bfcf0fc140592a",
    ),
    Internal(
        "waitress.server.BaseWSGIServer.maintenance",
        "replaced: limits.ConnectionLimits.maintain (header, idle and body timeouts)",
        "what the original closes",
        "4ab5b7f595bc4253",
    ),
    Internal(
        "waitress.server.BaseWSGIServer.readable",
        "relied on: calls maintenance every cleanup_interval; applies connection_limit",
        "both",
        "4eea9c1036b55b41",
    ),
    Internal(
        "waitress.wasyncore.readwrite",
        "called by loop.EventLoop for each event, as waitress's poll2 does",
        "its flags handling",
        "2467235cc3f4eb51",
    ),
    Internal(
        "waitress.wasyncore.poll2",
        "what loop.EventLoop replaces (and uses where there is no epoll)",
        "what it asks each connection; EventLoop.wait does the same",
        "f2ea2bd150ff2600",
    ),
    Internal(
        "waitress.wasyncore._DISCONNECTED",
        "the errors after which a sendfile(2) means the client is gone",
        "the set of errors",
        "cae472763e6e4ca3",
    ),
)


def resolve(name: str) -> object:
    """The object a dotted name refers to: a module, then attributes."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(name)


def fingerprint_of(name: str) -> str:
    """The first 16 hex digits of the SHA-256 of the object's source (or, for a value,
    of its repr, sorted when it is a set)."""
    found = resolve(name)
    if isinstance(found, (set, frozenset)):
        text = repr(sorted(found))
    elif inspect.isroutine(found) or inspect.isclass(found):
        text = inspect.getsource(found)
    else:
        text = repr(found)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
