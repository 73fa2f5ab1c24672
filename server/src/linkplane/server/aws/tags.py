"""How linkplane marks the AWS objects it creates, so that a crash never duplicates one.

Two halves of crash-safe creation (see the reference's "Idempotency"): a ClientToken derived
deterministically from the owning resource (same resource and generation, same token, so AWS
returns the original object for a repeated create) and ownership tags on every object (so that
when AWS no longer honours the token, or never did, the reconciler finds the object by its
``linkplane:uid`` tag and adopts it instead of creating a second one). The reconciler persists
the token before calling AWS; the helpers in ``endpoints``/``services``/``loadbalancers`` use the
tag keys defined here to search.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

UID_KEY = "linkplane:uid"
"""The owning resource's uid: the key adoption searches by."""
RESOURCE_KEY = "linkplane:resource"
"""The owning resource's name, for humans browsing the AWS console."""
KIND_KEY = "linkplane:kind"
"""The owning resource's kind (endpoint, endpoint-service, load-balancer, ...)."""

RESERVED_PREFIXES = ("aws:", "linkplane:")
"""Label keys that cannot become tags: AWS rejects ``aws:``; ``linkplane:`` is ours."""

# AWS tag limits (EC2 and ELBv2 alike): 50 tags per resource, keys up to 128 characters,
# values up to 256.
MAX_TAGS = 50
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
MAX_CLIENT_TOKEN_LENGTH = 64

# EC2 TagSpecifications need the resource type; these are the EC2 kinds linkplane creates.
EC2_RESOURCE_TYPES: Mapping[str, str] = {
    "endpoint": "vpc-endpoint",
    "endpoint-service": "vpc-endpoint-service",
}

Tag = dict[str, str]
TagSpecification = dict[str, str | list[Tag]]

_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


def deterministic_client_token(uid: str, generation: int, purpose: str) -> str:
    """A ClientToken (≤ 64 ASCII characters) that is the same for the same inputs, always.

    ``purpose`` separates the different creates one resource makes (``"endpoint"``,
    ``"endpoint-service"``); ``generation`` changes the token when the desired parameters
    change, because reusing a token with new parameters is ``IdempotentParameterMismatch``.
    """
    digest = hashlib.sha256(f"{uid}\x00{generation}\x00{purpose}".encode()).hexdigest()
    token = f"lp1-{digest[:48]}"
    assert len(token) <= MAX_CLIENT_TOKEN_LENGTH
    return token


def deterministic_name(uid: str, purpose: str, *, prefix: str = "lp", max_length: int = 32) -> str:
    """A name derived from the uid, for AWS objects that are idempotent *by name*.

    ELBv2 creates are idempotent by name and load balancer / target group names are at most
    32 characters of letters, digits and hyphens, so the uid (36 characters) cannot be used
    as is. The name is the prefix, the purpose and a hash of the uid.
    """
    slug = _NAME_CHARS.sub("-", purpose.lower()).strip("-")
    digest = hashlib.sha256(f"{uid}\x00{purpose}".encode()).hexdigest()
    head = f"{prefix}-{slug}-" if slug else f"{prefix}-"
    room = max_length - len(head)
    if room < 8:
        # Keep enough hash to stay unique; shorten the purpose instead.
        head = f"{prefix}-"
        room = max_length - len(head)
    return f"{head}{digest[:room]}"


def tags(uid: str, kind: str, name: str, labels: Mapping[str, str] | None = None) -> list[Tag]:
    """The tags for an object owned by a linkplane resource: ownership tags, then its labels.

    This plain ``[{"Key", "Value"}]`` list is what ELBv2's ``Tags=`` takes. Raises ValueError
    for labels AWS would reject or that would overwrite an ownership tag.
    """
    result = [
        {"Key": UID_KEY, "Value": uid},
        {"Key": RESOURCE_KEY, "Value": name[:MAX_VALUE_LENGTH]},
        {"Key": KIND_KEY, "Value": kind},
    ]
    for key, value in sorted((labels or {}).items()):
        if key.lower().startswith(RESERVED_PREFIXES):
            raise ValueError(f"label key {key!r} uses a reserved prefix {RESERVED_PREFIXES}")
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"label key {key!r} must be 1 to {MAX_KEY_LENGTH} characters")
        if len(value) > MAX_VALUE_LENGTH:
            raise ValueError(f"label {key!r} value exceeds {MAX_VALUE_LENGTH} characters")
        result.append({"Key": key, "Value": value})
    if len(result) > MAX_TAGS:
        raise ValueError(f"{len(result)} tags exceed AWS's limit of {MAX_TAGS} per resource")
    return result


def linkplane_tags(
    uid: str, kind: str, name: str, labels: Mapping[str, str] | None = None
) -> list[TagSpecification]:
    """``TagSpecifications`` for an EC2 create (CreateVpcEndpoint, ...): see :func:`tags`.

    Tagging at creation (rather than CreateTags afterwards) is what makes adoption safe: the
    object is never visible without its uid tag.
    """
    try:
        resource_type = EC2_RESOURCE_TYPES[kind]
    except KeyError:
        raise ValueError(
            f"no EC2 resource type for kind {kind!r}; ELBv2 objects take tags() directly"
        ) from None
    return [{"ResourceType": resource_type, "Tags": tags(uid, kind, name, labels)}]


def uid_filter(uid: str) -> list[dict[str, str | list[str]]]:
    """The EC2 ``Filters`` that find objects owned by one resource."""
    return [{"Name": f"tag:{UID_KEY}", "Values": [uid]}]


def tag_value(obj: Mapping[str, object], key: str) -> str | None:
    """A tag's value from an AWS object's ``Tags`` list (EC2 and ELBv2 use the same shape)."""
    raw = obj.get("Tags")
    if not isinstance(raw, list):
        return None
    for tag in raw:
        if isinstance(tag, Mapping) and tag.get("Key") == key:
            value = tag.get("Value")
            return value if isinstance(value, str) else None
    return None
