"""DescribeVpcEndpoints answered as XML written here, not by moto's generic serialiser.

moto serialises a response by walking botocore's shape of every member and trying several
attribute spellings for each (``AttributePicker``): about 5 ms per endpoint on this (loaded)
machine, so a DescribeVpcEndpoints of every endpoint of an account (the reconciler's snapshot)
took about a second for 200 endpoints while holding the world lock. This writes the same document
(the ``VpcEndpoint`` shape's wire names, in its member order, None omitted, lists as
``<…Set>`` of ``<item>``) straight from the ``SimVpcEndpoint`` attributes.
moto's backend still selects the endpoints (ids, filters, errors); a result holding an
endpoint that is not the simulator's own (``other_endpoints``) goes to moto's serialiser.
``tests/sim/test_describe_fast_path.py`` checks the two answers parse to the same data.
"""

import uuid
from collections.abc import Callable, Iterable
from xml.sax.saxutils import escape

from moto.core.responses import ActionResult
from moto.ec2.responses import EC2Response

from linkplane.sim import ec2_common as common
from linkplane.sim import models

# moto's own DescribeVpcEndpoints (captured at import, before install() replaces it).
moto_describe_vpc_endpoints: Callable[[EC2Response], ActionResult] = (
    EC2Response.describe_vpc_endpoints
)

_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15"


def describe_vpc_endpoints(self: EC2Response) -> ActionResult | str:
    common.dry_run(self)
    found = self.ec2_backend.describe_vpc_endpoints(
        vpc_end_point_ids=self._get_param("VpcEndpointIds", []),
        filters=self._filters_from_querystring(),
    )
    if not all(isinstance(endpoint, models.SimVpcEndpoint) for endpoint in found):
        result: ActionResult = moto_describe_vpc_endpoints(self)
        return result
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<DescribeVpcEndpointsResponse xmlns="{_XMLNS}">',
        f"<requestId>{uuid.uuid4()}</requestId><vpcEndpointSet>",
    ]
    for endpoint in found:
        parts.append("<item>")
        _endpoint(parts, endpoint)
        parts.append("</item>")
    parts.append("</vpcEndpointSet></DescribeVpcEndpointsResponse>")
    return "".join(parts)


def _endpoint(out: list[str], ep: models.SimVpcEndpoint) -> None:
    """One ``VpcEndpoint``, members in the shape's order (as moto's serialiser writes them)."""
    _text(out, "vpcEndpointId", ep.id)
    _text(out, "vpcEndpointType", ep.vpc_endpoint_type)
    _text(out, "vpcId", ep.vpc_id)
    _text(out, "serviceName", ep.service_name)
    _text(out, "state", ep.state)
    _text(out, "policyDocument", ep.policy_document)
    _strings(out, "routeTableIdSet", ep.route_table_ids)
    _strings(out, "subnetIdSet", ep.subnet_ids)
    groups = [
        f"<item><groupId>{escape(g['GroupId'])}</groupId>"
        f"<groupName>{escape(g['GroupName'])}</groupName></item>"
        for g in ep.groups
    ]
    _set(out, "groupSet", groups)
    _text(out, "ipAddressType", ep.ip_address_type)
    if ep.dns_options is not None:
        record = ep.dns_options.get("DnsRecordIpType")
        inner = f"<dnsRecordIpType>{escape(record)}</dnsRecordIpType>" if record else ""
        out.append(f"<dnsOptions>{inner}</dnsOptions>")
    _bool(out, "privateDnsEnabled", ep.private_dns_enabled)
    _bool(out, "requesterManaged", ep.requester_managed)
    _strings(out, "networkInterfaceIdSet", ep.network_interface_ids)
    if ep.dns_entries is not None:
        entries = [
            f"<item><dnsName>{escape(e['DnsName'])}</dnsName>"
            f"<hostedZoneId>{escape(e['HostedZoneId'])}</hostedZoneId></item>"
            for e in ep.dns_entries
        ]
        _set(out, "dnsEntrySet", entries)
    out.append(
        "<creationTimestamp>"
        f"{ep.creation_timestamp.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</creationTimestamp>"
    )
    tags = [
        f"<item><key>{escape(t['key'])}</key><value>{escape(t['value'])}</value></item>"
        for t in ep.get_tags()
    ]
    _set(out, "tagSet", tags)
    _text(out, "ownerId", ep.owner_id)
    if ep.last_error is not None:
        out.append("<lastError>")
        _text(out, "message", ep.last_error.get("Message"))
        _text(out, "code", ep.last_error.get("Code"))
        out.append("</lastError>")
    _text(out, "failureReason", ep.failure_reason)
    _text(out, "serviceRegion", ep.service_region)


def _text(out: list[str], name: str, value: object) -> None:
    if value is not None:
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def _bool(out: list[str], name: str, value: object) -> None:
    if value is not None:
        out.append(f"<{name}>{'true' if value else 'false'}</{name}>")


def _strings(out: list[str], name: str, values: Iterable[str] | None) -> None:
    if values is not None:
        _set(out, name, [f"<item>{escape(str(v))}</item>" for v in values])


def _set(out: list[str], name: str, items: list[str]) -> None:
    out.append(f"<{name}>{''.join(items)}</{name}>" if items else f"<{name}/>")
