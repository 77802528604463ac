"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/test_openapi.py: tus pieces are
plain bytes under their own media type, and a tus creation that keeps to the document
names its file in a way the server can read."""

import base64
import re

import schemathesis

from pcloud.api.openapi import TUS_METADATA

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

FUZZED_NAME = "filename " + base64.b64encode(b"fuzzed.bin").decode()


@schemathesis.hook("map_headers").apply_to(method="POST", path="/tus/")
def name_the_file_in_documented_metadata(ctx, headers):
    """The document can say that Upload-Metadata is `filename <base64>` pairs, not that
    the base64 must be of a valid UTF-8 name: random base64 seldom is, so a documented
    value gets a real name first (the stateful phase then reaches the upload's PATCH,
    HEAD and DELETE). An undocumented value stays as it was generated."""
    value = (headers or {}).get("Upload-Metadata")
    if value is not None and re.fullmatch(TUS_METADATA, value):
        headers["Upload-Metadata"] = re.sub(r"^(filename|name) [^,]*", FUZZED_NAME, value)
    return headers
