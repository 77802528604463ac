"""Share links: a public `/s/<token>` for one file or one folder.

Security rules:
- The token is 192 random bits (`secrets.token_urlsafe(24)`); only its SHA-256 is kept,
  so the database alone never yields a working link. (A fast hash is enough for a
  secret this long: nothing to brute-force.)
- A link reaches only what it covers: its file, or its folder and what is below it,
  each looked up by id and checked to lie under the shared folder (there are no paths to
  climb out of). An upload-only link (a file drop) lists and serves nothing.
- A password's wrong guesses go through the sign-in throttle (per link and client IP,
  per IP, per link), and each is audited; the right one earns a cookie signed with the
  secret key that opens only that link, until the link's password changes (never: a
  link's settings are fixed) or the cookie expires.
- Revoked or expired links, and links past their download limit, are Gone (410). The
  limit is counted in one conditional UPDATE, so two downloads racing for the last one
  cannot both win.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from pcloud.config import Settings
from pcloud.errors import BadRequest, Forbidden, Gone, NotFound, Unauthorized
from pcloud.models import Folder, Share, StoredFile, User, database_proxy, micros, utc_now
from pcloud.services import audit, folders, throttle, tree
from pcloud.services.passwords import check_password_hash, generate_password_hash

VIEW, UPLOAD = "view", "upload"
MODES = (VIEW, UPLOAD)
TOKEN_BYTES = 24
UNLOCK_LIFETIME = timedelta(days=1)
LINK_NOT_FOUND = "This link does not exist"
LINK_GONE = "This link has expired or was revoked"
LINK_USED_UP = "This link has been used as often as its owner allowed"
MAX_PASSWORD = 1024
MAX_EXPIRES_IN = 10**10 - 1  # seconds: over 300 years
MAX_DOWNLOADS = 2**31 - 1  # what its INTEGER column holds on PostgreSQL

SHARE_CREATED = "share-created"
SHARE_REVOKED = "share-revoked"
SHARE_PASSWORD_FAILED = "share-password-failed"
SHARE_DOWNLOADED = "share-downloaded"
SHARE_UPLOADED = "share-uploaded"


@dataclass(frozen=True)
class NewShare:
    share: Share
    token: str  # shown once, to its creator; never stored


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create(
    settings: Settings,
    owner_id: int,
    *,
    file_id: object = None,
    folder_id: object = None,
    mode: object = VIEW,
    password: object = None,
    expires_at: datetime | None = None,
    max_downloads: object = None,
    ip_address: str | None = None,
) -> NewShare:
    """A new link to the owner's file or folder (`folder_id` "root": their root)."""
    if mode not in MODES:
        raise BadRequest(f"'mode' must be one of {', '.join(MODES)}")
    if (file_id is None) == (folder_id is None):
        raise BadRequest("Send 'file_id' or 'folder_id' (one of them)")
    if mode == UPLOAD and folder_id is None:
        raise BadRequest("An upload-only link needs a folder to upload into")
    if password is not None and (
        not isinstance(password, str) or not password or len(password) > MAX_PASSWORD
    ):
        raise BadRequest(f"'password' must be text of 1 to {MAX_PASSWORD} characters")
    if (
        max_downloads is not None
        and (max_downloads := tree.whole_number(max_downloads, 1, MAX_DOWNLOADS)) is None
    ):
        raise BadRequest(f"'max_downloads' must be a whole number from 1 to {MAX_DOWNLOADS}")
    if expires_at is not None and expires_at <= utc_now():
        raise BadRequest("'expires_at' must be in the future")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with database_proxy.atomic():
        if file_id is not None:
            stored = folders.file_of(owner_id, file_id)
            target = {"file_id": stored.id}
            what = stored.name
        else:
            folder = folders.get(owner_id, _folder_ref(folder_id))
            target = {"folder_id": folder.id}
            what = folder.name or "/"
        share = Share.create(
            owner=owner_id,
            token_hash=token_hash(token),
            mode=mode,
            password_hash=None
            if password is None
            else generate_password_hash(password, method=settings.password_hash),
            expires_at=expires_at,
            max_downloads=max_downloads,
            **target,
        )
        audit.record(
            SHARE_CREATED,
            user_id=owner_id,
            ip_address=ip_address,
            share=share.id,
            item=what,
            mode=mode,
            password=password is not None,
        )
    return NewShare(share, token)


def _folder_ref(folder_id: object) -> int | None:
    """'root' -> None (the root); a folder id as sent -> the id. NotFound otherwise."""
    if folder_id == "root":
        return None
    folder = tree.as_id(folder_id)
    if folder is None:
        raise NotFound(tree.FOLDER_NOT_FOUND)
    return folder


def shared_folder_id(share: Share) -> int:
    """The folder of a folder link (every link names a file or a folder)."""
    if share.folder_id is None:
        raise NotFound("Folder not found")
    return share.folder_id


def list_of(owner_id: int | None = None) -> list[tuple[Share, str]]:
    """Links (of one owner, or everyone's) newest first, each with its owner's name."""
    query = (
        Share.select(Share, User.username)
        .join(User, on=(Share.owner == User.id))
        .order_by(Share.created_at.desc(), Share.id.desc())
    )
    if owner_id is not None:
        query = query.where(Share.owner == owner_id)
    return [(share, share.owner.username) for share in query]


def revoke(
    share_id: int,
    owner_id: int | None = None,
    actor: str = audit.USER_ACTOR,
    ip_address: str | None = None,
) -> Share:
    """End a link at once (`owner_id` None: the admin's, any link). NotFound otherwise."""
    with database_proxy.atomic():
        query = Share.select().where(Share.id == share_id)
        if owner_id is not None:
            query = query.where(Share.owner == owner_id)
        share: Share | None = query.first()
        if share is None:
            raise NotFound("No such share link")
        if share.revoked_at is None:
            share.revoked_at = utc_now()
            share.save(only=[Share.revoked_at])
            audit.record(
                SHARE_REVOKED,
                user_id=share.owner_id,
                actor=actor,
                ip_address=ip_address,
                share=share.id,
            )
    return share


def item_of(share: Share) -> tuple[str, int, str | None]:
    """("file" or "folder", its id, its name now; None if it is gone)."""
    if share.file_id is not None:
        name = StoredFile.select(StoredFile.name).where(StoredFile.id == share.file_id).scalar()
        return "file", share.file_id, name
    folder_id = shared_folder_id(share)
    name = Folder.select(Folder.name).where(Folder.id == folder_id).scalar()
    return "folder", folder_id, name


def state(share: Share, now: datetime | None = None) -> str:
    """'active', 'revoked', 'expired' or 'used up'."""
    now = now or utc_now()
    if share.revoked_at is not None:
        return "revoked"
    if share.expires_at is not None and share.expires_at <= now:
        return "expired"
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        return "used up"
    return "active"


def open_link(token: str) -> Share:
    """The live link of this token. NotFound for none, Gone for one revoked, expired or
    used up, or whose file or folder is gone (in the trash, or deleted)."""
    share = Share.get_or_none(Share.token_hash == token_hash(token))
    if share is None:
        raise NotFound(LINK_NOT_FOUND)
    current = state(share)
    if current == "used up":
        raise Gone(LINK_USED_UP)
    if current != "active":
        raise Gone(LINK_GONE)
    if share.file_id is not None:
        stored = StoredFile.get_or_none(StoredFile.id == share.file_id)
        if stored is None or stored.folder_id is None or not tree.is_live(stored.folder_id):
            raise Gone("The shared file is no longer there")
    elif not tree.is_live(shared_folder_id(share)):
        raise Gone("The shared folder is no longer there")
    return share


# Password guesses -----------------------------------------------------------------


def _throttle_keys(share: Share, ip_address: str | None) -> list[throttle.Key]:
    return throttle.keys_for(f"share:{share.id}", ip_address)


def unlock(share: Share, password: str, secret_key: str, ip_address: str | None) -> str:
    """Check a password for the link; the value of the cookie that opens it. Raises
    TooManyRequests while the throttle holds this link or address, Unauthorized for a
    wrong password (counted and audited)."""
    if share.password_hash is None:
        return unlock_value(share, secret_key)
    keys = _throttle_keys(share, ip_address)
    throttle.check(keys)
    if len(password) <= MAX_PASSWORD and check_password_hash(share.password_hash, password):
        return unlock_value(share, secret_key)
    with database_proxy.atomic():
        throttle.record_failure(keys)
        audit.record(
            SHARE_PASSWORD_FAILED, user_id=share.owner_id, ip_address=ip_address, share=share.id
        )
    raise Unauthorized("Wrong password")


def unlock_value(share: Share, secret_key: str, now: datetime | None = None) -> str:
    """`<expiry>.<mac>`: opens this link (and no other) until the expiry."""
    until = int(((now or utc_now()) + UNLOCK_LIFETIME).timestamp())
    return f"{until}.{_unlock_mac(share, secret_key, until)}"


def is_unlocked(share: Share, cookie: str | None, secret_key: str) -> bool:
    """True for a link without a password, or a cookie from unlock() still valid."""
    if share.password_hash is None:
        return True
    if not cookie or "." not in cookie:
        return False
    until_text, _, mac = cookie.partition(".")
    if not until_text.isdigit() or int(until_text) < utc_now().timestamp():
        return False
    return hmac.compare_digest(mac, _unlock_mac(share, secret_key, int(until_text)))


def _unlock_mac(share: Share, secret_key: str, until: int) -> str:
    # The password's hash is part of the message: a cookie opens only this link as it is.
    message = f"share-unlock:{share.id}:{share.password_hash}:{until}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


# What a link covers ---------------------------------------------------------------


def require_view(share: Share) -> None:
    if share.mode != VIEW:
        raise Forbidden("This link only takes uploads")


def shared_file(share: Share, file_id: int | None = None) -> StoredFile:
    """The link's file, or (for a folder link) a file of that id below its folder.
    NotFound for anything else: a sibling's file is as unknown as a made-up id."""
    require_view(share)
    if share.file_id is not None:
        if file_id is not None and file_id != share.file_id:
            raise NotFound("File not found")
        return StoredFile.get_by_id(share.file_id)
    if file_id is None:
        raise NotFound("File not found")
    stored = StoredFile.get_or_none(
        (StoredFile.id == file_id) & (StoredFile.owner == share.owner_id)
    )
    if stored is None or stored.folder_id is None or not _below(share, stored.folder_id):
        raise NotFound("File not found")
    return stored


def shared_folder(share: Share, folder_id: int | None = None) -> Folder:
    """The link's folder, or a folder below it (NotFound for any other)."""
    require_view(share)
    if share.folder_id is None:
        raise NotFound("Folder not found")
    if folder_id is None or folder_id == share.folder_id:
        return Folder.get_by_id(share.folder_id)
    folder = Folder.get_or_none((Folder.id == folder_id) & (Folder.owner == share.owner_id))
    if folder is None or not _below(share, folder.id):
        raise NotFound("Folder not found")
    return folder


def _below(share: Share, folder_id: int) -> bool:
    """True when the folder is the shared folder or below it, and nothing between is
    in the trash."""
    for chain_id, _parent, trashed in tree.ancestors(folder_id):
        if trashed is not None:
            return False
        if chain_id == share.folder_id:
            return True
    return False


def path_below(share: Share, folder: Folder) -> list[Folder]:
    """The folders from the shared one down to `folder` (for the page's breadcrumbs)."""
    chain = []
    for chain_id, _parent, _trashed in tree.ancestors(folder.id):
        chain.append(chain_id)
        if chain_id == share.folder_id:
            break
    by_id = {f.id: f for f in Folder.select().where(Folder.id.in_(chain))}
    return [by_id[folder_id] for folder_id in reversed(chain) if folder_id in by_id]


@dataclass(frozen=True)
class FolderPage:
    folder: Folder
    subfolders: list[Folder]
    files: list[StoredFile]


def folder_page(share: Share, folder: Folder) -> FolderPage:
    """What a folder link's page shows of one folder: its folders and files by name."""
    subfolders = list(
        Folder.select().where(Folder.parent == folder.id).order_by(peewee.fn.LOWER(Folder.name))
    )
    files = list(
        StoredFile.select()
        .where(StoredFile.folder == folder.id)
        .order_by(peewee.fn.LOWER(StoredFile.name))
    )
    return FolderPage(folder, subfolders, files)


# Downloads and uploads ------------------------------------------------------------


def count_download(share: Share, what: str, ip_address: str | None) -> None:
    """Count one download of the link (audited). Gone when its limit is reached: one
    conditional UPDATE, so racing downloads of the last one cannot both win."""
    with database_proxy.atomic():
        counted = (
            Share.update(downloads=Share.downloads + 1)
            .where(
                (Share.id == share.id)
                & Share.revoked_at.is_null()
                & (Share.max_downloads.is_null() | (Share.downloads < Share.max_downloads))
            )
            .execute()
        )
        if not counted:
            raise Gone(LINK_USED_UP)
        audit.record(
            SHARE_DOWNLOADED,
            user_id=share.owner_id,
            ip_address=ip_address,
            share=share.id,
            item=what,
        )


def count_upload(share: Share, name: str, size: int, ip_address: str | None) -> None:
    with database_proxy.atomic():
        Share.update(uploads=Share.uploads + 1).where(Share.id == share.id).execute()
        audit.record(
            SHARE_UPLOADED,
            user_id=share.owner_id,
            ip_address=ip_address,
            share=share.id,
            item=name,
            bytes=size,
        )


def require_upload(share: Share) -> None:
    if share.mode != UPLOAD:
        raise Forbidden("This link does not take uploads")


def expires_in(share: Share) -> int | None:
    """Seconds until the link expires (None: never)."""
    if share.expires_at is None:
        return None
    return max(0, (micros(share.expires_at) - micros(utc_now())) // 1_000_000)
