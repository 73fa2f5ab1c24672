"""Labels follow the spec onto AWS tags, after creation too.

Objects are created with their labels as tags (aws/tags.py); when the labels change later,
this diff adds, changes and removes the user tags, never linkplane's own ownership tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linkplane.server.aws import calls


def user_tags(obj: Mapping[str, Any]) -> dict[str, str]:
    """An AWS object's tags other than linkplane's own."""
    found: dict[str, str] = {}
    for tag in obj.get("Tags") or []:
        key = str(tag.get("Key", ""))
        if key and not key.startswith("linkplane:"):
            found[key] = str(tag.get("Value", ""))
    return found


async def sync_ec2_tags(
    ctx: calls.Context, resource_id: str, obj: Mapping[str, Any], labels: Mapping[str, str]
) -> bool:
    """CreateTags/DeleteTags so the object's user tags equal `labels`; True if it changed."""
    current = user_tags(obj)
    wanted = dict(labels)  # validated by the API: lower-case keys, never `linkplane:`
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    removed = sorted(set(current) - set(wanted))
    if changed:
        await ctx.call(
            "ec2",
            "CreateTags",
            Resources=[resource_id],
            Tags=[{"Key": k, "Value": v} for k, v in sorted(changed.items())],
        )
    if removed:
        await ctx.call(
            "ec2", "DeleteTags", Resources=[resource_id], Tags=[{"Key": k} for k in removed]
        )
    return bool(changed or removed)
