"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/test_openapi.py: tus pieces are
plain bytes under their own media type."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
