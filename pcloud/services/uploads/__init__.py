"""Uploads: receiving a body into the store, resumable (tus) uploads, and what is kept
of a body whose connection broke off. No HTTP here: pcloud.api parses the requests
(headers, form fields) and calls these; pcloud.server hands over a body's bytes.

The modules, by concern:

- `multipart`: a multipart/form-data body's `file` part, straight into a blob
  (MultipartReceiver as the bytes arrive; receive_multipart from a stream).
- `pieces`: a tus PATCH's bytes, straight into the upload's resumable write
  (PlacedPiece, and ReceivedPiece, its receiver), and keep_broken_piece.
- `resumable`: a tus upload's life: create, append (and make the file), terminate,
  and what gc needs.
- `records`: the upload's database row and its compare-and-set offset.
- `hashes`: the checksums a client may ask for, and the SHA-256 carried from piece to
  piece (UploadHashes, one per worker process).

A new way to store uploads (S3, say) is a BlobStore (pcloud.storage.base): everything
here goes through that contract, never through files.

The receiver contract
---------------------
The server (pcloud.server, through the app's request previews in pcloud.api.bodies)
asks for a receiver once a request's headers are complete, and hands it the body piece
by piece as it reads it from the connection, before the view runs. A BodyReceiver
promises:

- receive(data): takes the body's next bytes, in order, as they arrive; never raises
  (a failure is kept, and reported when the view takes the result) and never blocks
  on anything but the store.
- Nothing it stores is anyone's until the view takes it (MultipartReceiver.take(),
  resumable.append() with the PlacedPiece): the view still authenticates, checks and
  answers.
- close(): the request is over; whatever the view did not take is undone, so the store
  is as it was before the request. Called once, always, also after broken(); a second
  call does nothing.
- broken(): the connection broke off before the whole body arrived, so the view never
  runs. Keeps what may be kept of what did arrive (a multipart body: nothing, half a
  file is no file; a tus piece: its bytes, if the request would have been let in, see
  keep_broken_piece). Never raises; close() follows.
"""

from __future__ import annotations

from typing import Protocol


class BodyReceiver(Protocol):
    """Receives a request body into the store as it arrives (see the contract above)."""

    def receive(self, data: bytes) -> None:
        """The body's next bytes, as they arrive. Never raises: errors wait for the view."""

    def close(self) -> None:
        """The request is over: undo whatever the view did not take."""

    def broken(self) -> None:
        """The connection broke off before the whole body arrived, so the view never
        runs: keep what may be kept of what did arrive. Never raises. close() follows."""
