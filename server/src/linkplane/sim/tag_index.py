"""A resource's EC2 tags by direct lookup, instead of moto's scan of every tag in the backend.

moto answers ``TaggedEC2Resource.get_tags()`` with ``describe_tags(resource-id=...)``, which
walks every tag of every resource in the (account, Region) backend and matches a regular
expression against each resource id. Describe actions call it once per listed object (to
serialise ``Tags``) and once per object per filter (moto's ``get_filter_value`` reads the tags
before looking at the filter's name), so DescribeVpcEndpoints over N tagged endpoints cost
O(N²): 2.6 s for 200 endpoints, 54 s for 1,000 (bench/sim_describe.py). moto's backend already
keeps tags as ``{resource_id: {key: value}}``: this reads that dict, with the same answer
(same records, same order) as moto's scan for an exact id.
"""

from collections.abc import Callable

from moto.ec2 import utils as ec2_utils
from moto.ec2.models.core import TaggedEC2Resource

_original: Callable[[TaggedEC2Resource], list[dict[str, str]]] | None = None


def _get_tags(self: TaggedEC2Resource) -> list[dict[str, str]]:
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    tags: dict[str, str] = self.ec2_backend.tags.get(resource_id, {})  # type: ignore[attr-defined]
    if not tags:
        return []
    resource_type = ec2_utils.EC2_PREFIX_TO_RESOURCE.get(ec2_utils.get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in tags.items()
    ]


def install() -> None:
    """Serve ``get_tags`` from moto's tag dict. Idempotent."""
    global _original  # noqa: PLW0603 - moto's classes are process-global; so is this seam
    if _original is None:
        _original = TaggedEC2Resource.get_tags
    TaggedEC2Resource.get_tags = _get_tags  # type: ignore[method-assign]


def uninstall() -> None:
    global _original  # noqa: PLW0603
    if _original is not None:
        TaggedEC2Resource.get_tags = _original  # type: ignore[method-assign, assignment]
        _original = None
