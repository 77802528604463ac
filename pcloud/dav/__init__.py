"""WebDAV (RFC 4918, classes 1 and 2) at /dav/, over each user's own tree.

WsgiDAV speaks the protocol (XML, the If header, lock semantics); pcloud gives it a
provider over the same services the API uses (pcloud.dav.provider), locks and dead
properties in the database (locks.py, properties.py), uploads streamed into the blob
store (put.py), PROPFIND of large folders answered from the rows (listing.py), and
HTTP Basic sign-in with app passwords or the account password (app.py,
pcloud.services.basic_sign_in).
"""

# WsgiDAV's own modules import each other in a cycle that only resolves when its util
# module comes first; importing it here lets every pcloud.dav module import the others.
import wsgidav.util  # noqa: E402, F401
