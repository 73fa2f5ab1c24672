"""Page sizes and opaque page tokens (AIP-158).

Tokens carry the last key of the previous page (keyset pagination: stable under concurrent
inserts, unlike offsets) and a digest of the request's other parameters, signed with HMAC, so a
token is opaque, cannot be forged, and is refused when the caller changes the filter mid-way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from linkplane.server.domain.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, path: str = "page_size") -> int:
    """0 → the default; above the maximum → the maximum; negative → INVALID_ARGUMENT."""
    if requested < 0:
        raise InvalidArgument([FieldViolation(path, "must not be negative")])
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _digest(context: list[str]) -> str:
    return hashlib.sha256("\x00".join(context).encode()).hexdigest()[:16]


def encode(secret: bytes, context: list[str], after: str) -> str:
    """A token that resumes after `after` for a request with the same `context`."""
    body = json.dumps({"a": after, "c": _digest(context)}, separators=(",", ":")).encode()
    mac = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def decode(secret: bytes, context: list[str], token: str, path: str = "page_token") -> str | None:
    """The key to resume after, or None for an empty token."""
    if not token:
        return None
    invalid = InvalidArgument([FieldViolation(path, "is not a token from this list")])
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise invalid from None
    mac, body = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, hmac.new(secret, body, hashlib.sha256).digest()[:16]):
        raise invalid
    try:
        data = json.loads(body)
    except ValueError:
        raise invalid from None
    if data.get("c") != _digest(context):
        raise InvalidArgument([FieldViolation(path, "was issued for a different parent or filter")])
    after = data.get("a")
    if not isinstance(after, str):
        raise invalid
    return after
