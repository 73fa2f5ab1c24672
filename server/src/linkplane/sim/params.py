"""Refusing what the simulator does not model: every request field is modelled or refused.

A simulator that silently accepts a field it ignores lets a control plane believe AWS took a
change that it never applies — the endless reconcile loops of issue 8 hid that way. Each action
the simulator serves lists the fields it models (nested ones with a dot, list members with
``[]``); anything else in the request is AWS's ``InvalidParameter`` naming the field.
"""

import functools
from collections.abc import Iterable

import botocore.session
from botocore.model import ListShape, ServiceModel, Shape, StructureShape
from moto.ec2 import exceptions as ec2_errors

# Query keys every EC2 request carries.
_ENVELOPE = frozenset({"Action", "Version"})


@functools.cache
def _ec2_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("ec2")


def _query_name(member: str, shape: Shape) -> str:
    """The EC2 protocol's wire name of a member (botocore's EC2Serializer rule)."""
    serialization = shape.serialization
    if "queryName" in serialization:
        return str(serialization["queryName"])
    if "name" in serialization:
        name = str(serialization["name"])
        return name[0].upper() + name[1:]
    return member


def field_path(operation: str, query_key: str) -> str:
    """The API field (member names, dotted, no list indexes) a query key of ``operation`` sets:
    ``NetworkLoadBalancerArn.1`` → ``NetworkLoadBalancerArns``,
    ``SubnetConfiguration.2.Ipv4`` → ``SubnetConfigurations.Ipv4``."""
    shape: Shape | None = _ec2_model().operation_model(operation).input_shape
    path: list[str] = []
    for part in query_key.split("."):
        if part.isdigit():
            continue
        while isinstance(shape, ListShape):
            shape = shape.member
        if not isinstance(shape, StructureShape):
            path.append(part)
            shape = None
            continue
        for member, member_shape in shape.members.items():
            if _query_name(member, member_shape) == part:
                path.append(member)
                shape = member_shape
                break
        else:
            path.append(part)
            shape = None
    return ".".join(path)


def unmodelled(operation: str, query_keys: Iterable[str], modelled: frozenset[str]) -> list[str]:
    """The fields among ``query_keys`` that are not ``modelled`` (nor inside a modelled one).

    A modelled entry covers every field under it: ``TagSpecifications`` covers
    ``TagSpecifications.Tags.Key``; ``DnsOptions.DnsRecordIpType`` covers only itself.
    """
    refused: list[str] = []
    for key in query_keys:
        if key in _ENVELOPE:
            continue
        path = field_path(operation, key)
        parts = path.split(".")
        prefixes = {".".join(parts[: index + 1]) for index in range(len(parts))}
        if not prefixes & modelled and path not in refused:
            refused.append(path)
    return refused


def refuse_unmodelled(operation: str, query_keys: Iterable[str], modelled: frozenset[str]) -> None:
    """Raise AWS's ``InvalidParameter`` naming the first field not in ``modelled``."""
    refused = unmodelled(operation, query_keys, modelled)
    if refused:
        raise ec2_errors.InvalidParameter(
            f"linkplane-sim does not model {refused[0]}"
            + (f" (nor {', '.join(refused[1:])})" if len(refused) > 1 else "")
            + ": refusing the request rather than ignoring the field."
        )
