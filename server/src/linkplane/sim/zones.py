"""Availability Zone names and ids per account: AWS shuffles the mapping for every account.

In AWS ``us-east-1a`` of one account is not (necessarily) ``us-east-1a`` of another: names are
mapped to the physical zones, whose ids (``use1-az1``…) are the same for everyone, independently
per account. moto gives every account the same mapping, so two accounts could never disagree and
code comparing zones by name (wrong) passed. Here each account's mapping is a rotation of the
Region's zone ids by an amount derived from the account id (deterministic, so tests can rely on
it), applied wherever a zone id is shown: DescribeAvailabilityZones, subnets and the endpoint
services' AvailabilityZoneIds, and where names are compared across accounts.
"""

import functools
import hashlib
import inspect
from typing import Any

from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend, Zone
from moto.ec2.models.subnets import Subnet, SubnetBackend
from moto.utilities.utils import filter_resources


@functools.cache
def _region_zones(region: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """moto's (names, ids) of ``region``'s availability zones, both sorted."""
    zones = [
        zone
        for zone in RegionsAndZonesBackend.zones.get(region, [])
        if zone.zone_type == "availability-zone"
    ]
    names = tuple(sorted(zone.name for zone in zones))
    ids = tuple(sorted(zone.zone_id for zone in zones))
    return names, ids


def rotation(account: str, region: str) -> int:
    """How far ``account``'s names are shifted against the zone ids in ``region``."""
    _, ids = _region_zones(region)
    if not ids:
        return 0
    digest = hashlib.sha256(f"{account}/{region}".encode()).digest()
    return digest[0] % len(ids)


def zone_id(account: str, region: str, name: str) -> str | None:
    """The zone id ``account`` sees behind its zone ``name`` (None: not a zone of ``region``)."""
    names, ids = _region_zones(region)
    if name not in names:
        return None
    return ids[(names.index(name) + rotation(account, region)) % len(ids)]


def zone_name(account: str, region: str, zone: str) -> str | None:
    """The name ``account`` uses for the zone whose id is ``zone`` (None: unknown id)."""
    names, ids = _region_zones(region)
    if zone not in ids:
        return None
    return names[(ids.index(zone) - rotation(account, region)) % len(ids)]


def region_of(name: str) -> str:
    """The Region of an availability zone name (``us-east-1a`` → ``us-east-1``)."""
    return name[:-1]


@functools.cache
def _regions() -> frozenset[str]:
    return frozenset(region.name for region in RegionsAndZonesBackend.regions)


def known_region(region: str) -> bool:
    """Whether ``region`` is a Region name AWS (as moto knows it) has."""
    return region in _regions()


# moto seams: every zone id moto shows goes through the account's mapping ---------------------

_original_subnet_zone_id = Subnet.availability_zone_id
_original_describe_zones = RegionsAndZonesBackend.describe_availability_zones
_original_create_subnet = SubnetBackend.create_subnet


def _subnet_zone_id(subnet: Subnet) -> str:
    backend = subnet.ec2_backend
    mapped = zone_id(str(backend.account_id), str(backend.region_name), subnet.availability_zone)
    return mapped or str(subnet._availability_zone.zone_id)


def _describe_zones(
    backend: RegionsAndZonesBackend,
    filters: list[dict[str, Any]] | None = None,
    zone_names: list[str] | None = None,
    zone_ids: list[str] | None = None,
) -> list[Zone]:
    account = str(getattr(backend, "account_id", ""))
    region = str(getattr(backend, "region_name", ""))
    mapped = [
        Zone(
            zone.name,
            zone.region_name,
            zone_id(account, region, zone.name) or zone.zone_id,
            zone.zone_type,
        )
        for zone in RegionsAndZonesBackend.zones.get(region, [])
    ]
    result = mapped
    if filters:
        attr_pairs = (
            ("zone-id", "zone_id"),
            ("zone-type", "zone_type"),
            ("zone-name", "name"),
            ("region-name", "region_name"),
            ("state", "state"),
        )
        result = filter_resources(mapped, filters, attr_pairs)
    result = [zone for zone in result if not zone_ids or zone.zone_id in zone_ids]
    return [zone for zone in result if not zone_names or zone.name in zone_names]


def _create_subnet(backend: SubnetBackend, *args: Any, **kwargs: Any) -> Subnet:
    # A subnet created by zone id lands in the zone this account calls by that id.
    bound = _CREATE_SUBNET_SIGNATURE.bind(backend, *args, **kwargs)
    zone = bound.arguments.get("availability_zone_id")
    if zone and not bound.arguments.get("availability_zone"):
        account = str(getattr(backend, "account_id", ""))
        region = str(getattr(backend, "region_name", ""))
        name = zone_name(account, region, zone)
        if name is not None:
            bound.arguments["availability_zone"] = name
            bound.arguments["availability_zone_id"] = None
    subnet: Subnet = _original_create_subnet(*bound.args, **bound.kwargs)
    return subnet


_CREATE_SUBNET_SIGNATURE = inspect.signature(_original_create_subnet)


def install() -> None:
    """Route moto's zone ids through the per-account mapping. Idempotent."""
    Subnet.availability_zone_id = property(_subnet_zone_id)  # type: ignore[assignment,method-assign]
    RegionsAndZonesBackend.describe_availability_zones = _describe_zones  # type: ignore[method-assign,assignment]
    SubnetBackend.create_subnet = _create_subnet  # type: ignore[method-assign,assignment]


def uninstall() -> None:
    Subnet.availability_zone_id = _original_subnet_zone_id  # type: ignore[method-assign]
    RegionsAndZonesBackend.describe_availability_zones = _original_describe_zones  # type: ignore[method-assign]
    SubnetBackend.create_subnet = _original_create_subnet  # type: ignore[method-assign]
