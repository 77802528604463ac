"""Prometheus metrics at /metrics, when METRICS_TOKEN is set (off otherwise, at no cost).

Requests by route and status, their durations, bytes uploaded and downloaded, uploads in
progress, failed and throttled sign-ins. `pcloud serve` runs several worker processes, so
it points PROMETHEUS_MULTIPROC_DIR at a folder of its own before any worker starts
(pcloud.server), and a scrape adds up what every worker counted.

This module is imported only when metrics are on: prometheus_client decides at import
whether it counts for one process or several.
"""

from __future__ import annotations

import hmac
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as PROCESS_REGISTRY

from pcloud.errors import Unauthorized
from pcloud.services import audit

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "unmatched"  # 404s: the path itself would make labels without end

# Created once per process, shared by every app built in it (the tests build many).
REQUESTS = Counter("pcloud_http_requests", "HTTP requests answered", ["method", "route", "status"])
DURATION = Histogram(
    "pcloud_http_request_duration_seconds",
    "Time to answer an HTTP request (until the body starts)",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOADED = Counter("pcloud_uploaded_bytes", "Bytes of files stored by uploads")
DOWNLOADED = Counter("pcloud_downloaded_bytes", "Bytes of files sent by downloads")
UPLOADS_IN_PROGRESS = Gauge(
    "pcloud_uploads_in_progress", "Uploads being received right now", multiprocess_mode="livesum"
)
SIGN_IN_FAILURES = Counter("pcloud_sign_in_failures", "Failed sign-ins (wrong credentials)")
SIGN_INS_THROTTLED = Counter(
    "pcloud_sign_ins_throttled", "Sign-ins refused with 429 by the brute-force throttle"
)
UPLOAD_ENDPOINTS = {"files.upload", "tus.create", "tus.patch"}

blueprint = Blueprint("metrics", __name__)


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)
    app.before_request(_start_timer)
    app.after_request(_count_response)
    app.teardown_request(_finish_upload)
    audit.add_listener(_count_event)


def _count_event(action: str) -> None:
    if action == audit.SIGN_IN_FAILED:
        SIGN_IN_FAILURES.inc()
    elif action == audit.SIGN_IN_THROTTLED:
        SIGN_INS_THROTTLED.inc()


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()
    if request.endpoint in UPLOAD_ENDPOINTS:
        UPLOADS_IN_PROGRESS.inc()
        g.metrics_upload = True


def _finish_upload(_error: BaseException | None) -> None:
    if g.pop("metrics_upload", False):
        UPLOADS_IN_PROGRESS.dec()


def _count_response(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    method = request.method
    REQUESTS.labels(method, route, str(response.status_code)).inc()
    started = g.pop("metrics_started", None)
    if started is not None:
        DURATION.labels(method, route).observe(time.perf_counter() - started)
    uploaded = g.pop("uploaded_bytes", None)
    if uploaded:
        UPLOADED.inc(uploaded)
    if response.direct_passthrough and response.content_length:  # a file body (send_file)
        DOWNLOADED.inc(response.content_length)
    return response


@blueprint.get("/metrics")
def metrics():
    expected = current_app.extensions["pcloud"].settings.metrics_token
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise Unauthorized("Metrics need 'Authorization: Bearer <METRICS_TOKEN>'")
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = PROCESS_REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
