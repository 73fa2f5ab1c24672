"""The Connection reconciler's pure parts: reading AWS's answers into typed data, the IP type
rules, the private bookkeeping, and the endpoint-kind rules of the API (no AWS, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from linkplane.server.aws import endpoints as aws_endpoints
from linkplane.server.domain import endpoints as kinds
from linkplane.server.domain import specs
from linkplane.server.reconciler import (
    connection_model,
    connection_plans,
    connection_preflight,
    endpoint_snapshots,
    failures,
)


def subnet(subnet_id: str, *, v4: bool = True, v6: bool = True, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "SubnetId": subnet_id,
        "AvailabilityZone": "us-east-1a",
        "AvailabilityZoneId": "use1-az1",
        "Ipv6Native": not v4,
    }
    if v4:
        data["CidrBlock"] = "10.0.0.0/24"
    if v6:
        data["Ipv6CidrBlockAssociationSet"] = [
            {"Ipv6CidrBlock": "2600:1f18::/64", "Ipv6CidrBlockState": {"State": "associated"}}
        ]
    data.update(extra)
    return data


def detail(ip_types: list[str], *types: str) -> connection_model.ServiceDetail:
    return connection_model.ServiceDetail.parse(
        [
            {
                "ServiceName": "com.amazonaws.vpce.us-east-1.vpce-svc-1",
                "ServiceType": [{"ServiceType": t} for t in types or ("Interface",)],
                "SupportedIpAddressTypes": ip_types,
            }
        ],
        "Interface",
    )


TARGET = connection_model.Target(
    service_name="com.amazonaws.vpce.us-east-1.vpce-svc-1",
    region="us-east-1",
    cross_region=False,
    linkplane=None,
)


def spec(ip_type: str) -> specs.ConnectionSpec:
    return specs.ConnectionSpec(region="us-east-1", subnet_ids=["s"], ip_address_type=ip_type)


@pytest.mark.parametrize(
    ("ip_type", "offered", "subnets", "code"),
    [
        ("dualstack", ["ipv4"], [subnet("s1")], "UnsupportedIpAddressType"),
        ("dualstack", ["ipv4", "ipv6"], [subnet("s1", v6=False)], "SubnetWithoutIpv6"),
        ("dualstack", ["ipv4", "ipv6"], [subnet("s1", v4=False)], "SubnetWithoutIpv4"),
        ("ipv6", ["ipv4", "ipv6"], [subnet("s1")], "SubnetNotIpv6Only"),
        ("ipv6", ["ipv6"], [subnet("s1", v4=False)], None),
        ("dualstack", ["ipv4", "ipv6"], [subnet("s1")], None),
        ("ipv4", ["ipv4"], [subnet("s1", v6=False)], None),
    ],
)
def test_ip_address_type_rules(ip_type, offered, subnets, code):
    parsed = [connection_model.Subnet.parse(s) for s in subnets]
    if code is None:
        connection_preflight.check_ip_type(spec(ip_type), TARGET, detail(offered), parsed)
        return
    # linkplane's own pre-flight verdict, not an AWS error: the spec cannot be met as it is.
    with pytest.raises(failures.PermanentError) as caught:
        connection_preflight.check_ip_type(spec(ip_type), TARGET, detail(offered), parsed)
    assert caught.value.code == code
    assert not caught.value.retryable
    assert "s1" in caught.value.message or "ipv6" in caught.value.message.lower()


def test_an_ipv6_block_being_removed_does_not_count():
    removing = subnet("s1")
    removing["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlockState"]["State"] = "disassociating"
    assert not connection_model.Subnet.parse(removing).has_ipv6
    assert connection_model.Subnet.parse(subnet("s1")).has_ipv6


def test_service_detail_reads_the_entry_of_the_endpoint_type():
    interface = {
        "ServiceName": "com.amazonaws.us-east-1.s3",
        "ServiceType": [{"ServiceType": "Interface"}],
        "PrivateDnsName": "*.s3.us-east-1.amazonaws.com",
        "PrivateDnsNameVerificationState": "verified",
    }
    gateway = {
        "ServiceName": "com.amazonaws.us-east-1.s3",
        "ServiceType": [{"ServiceType": "Gateway"}],
    }
    as_gateway = connection_model.ServiceDetail.parse([interface, gateway], "Gateway")
    assert as_gateway.service_types == ("Interface", "Gateway")
    assert as_gateway.private_dns_name == ""
    as_interface = connection_model.ServiceDetail.parse([interface, gateway], "Interface")
    assert as_interface.private_dns_name and as_interface.private_dns_verified


def test_endpoint_parse_reads_aws_shapes():
    endpoint = aws_endpoints.Endpoint.parse(
        {
            "VpcEndpointId": "vpce-1",
            "VpcEndpointType": "Interface",
            "State": "pendingAcceptance",
            "SubnetIds": ["s1"],
            "Groups": [{"GroupId": "sg-1", "GroupName": "default"}],
            "PrivateDnsEnabled": False,
            "IpAddressType": "dualstack",
            "DnsOptions": {"DnsRecordIpType": "dualstack"},
            "DnsEntries": [{"DnsName": "a.example", "HostedZoneId": "Z1"}],
            "LastError": {"Code": "X", "Message": "y"},
        }
    )
    assert endpoint.state == "PENDING_ACCEPTANCE"
    assert endpoint.security_group_ids == ("sg-1",)
    assert endpoint.ip_address_type == "dualstack"
    assert endpoint.dns_record_ip_type == "dualstack"
    assert endpoint.dns_entries == (aws_endpoints.DnsEntry("a.example", "Z1"),)
    assert endpoint.last_error == aws_endpoints.LastError("X", "y")
    assert endpoint.private_dns_enabled is False


def test_bookkeeping_round_trips_in_the_status_json():
    status: dict[str, Any] = {"incarnation": 2, "endpoint_id": "vpce-1", "other": 1}
    book = connection_model.Bookkeeping.load(status)
    assert book == connection_model.Bookkeeping(incarnation=2, endpoint_id="vpce-1")
    assert book.token_generation(3) == 2_000_003
    book.fresh_read = True
    book.endpoint_id = ""
    book.save(status)
    assert status == {"incarnation": 2, "fresh_read": True, "other": 1}
    assert connection_model.Bookkeeping.load({}) == connection_model.Bookkeeping()


def test_plan_separates_changes_from_settled_fields():
    plan = connection_plans.Plan()
    plan.compare("SubnetIds", ["a"], ["a"], {})
    plan.compare("PrivateDnsEnabled", True, False, {"PrivateDnsEnabled": True})
    assert plan.settled == ["SubnetIds"]
    assert [c.field for c in plan.changes] == ["PrivateDnsEnabled"]


def test_plan_compares_ids_as_sets_and_sends_only_what_changes():
    plan = connection_plans.Plan()
    plan.compare_ids("SubnetIds", ["b", "a"], ["a", "b"])
    plan.compare_ids("RouteTableIds", ["rtb-1", "rtb-2"], ["rtb-1"])
    plan.compare_ids("SecurityGroupIds", ["sg-2"], ["sg-1"])
    assert plan.settled == ["SubnetIds"]
    assert [c.params for c in plan.changes] == [
        {"AddRouteTableIds": ["rtb-2"]},
        {"AddSecurityGroupIds": ["sg-2"], "RemoveSecurityGroupIds": ["sg-1"]},
    ]


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("com.amazonaws.us-east-1.sqs", "sqs"),
        ("com.amazonaws.eu-west-1.s3", "s3"),
        ("com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0", ""),
    ],
)
def test_aws_service_names(name, service):
    assert kinds.aws_service(name) == service
    assert kinds.gateway_capable(name) == (service in {"s3", "dynamodb"})


def test_a_valid_gateway_spec_has_no_violations():
    gateway = specs.ConnectionSpec(
        region="us-east-1",
        service_name="com.amazonaws.us-east-1.dynamodb",
        endpoint_type="gateway",
        route_table_ids=["rtb-0123456789abcdef0"],
    )
    assert kinds.check_kind(gateway, "connection") == []
    wrong_region = specs.ConnectionSpec(
        region="us-east-1",
        service_name="com.amazonaws.us-west-2.s3",
        endpoint_type="gateway",
        route_table_ids=["rtb-0123456789abcdef0"],
    )
    (violation,) = kinds.check_kind(wrong_region, "connection")
    assert violation.field == "connection.service_name"


class _Account:
    account_id = "222222222222"
    role_arn = "arn:aws:iam::222222222222:role/linkplane"


class _SnapshotContext:
    """A `calls.Context` stand-in answering DescribeVpcEndpoints from a list (and counting)."""

    account = _Account()
    region = "us-east-1"

    def __init__(self, endpoints: list[dict[str, Any]]) -> None:
        self.endpoints = endpoints
        self.describes = 0

    async def collect(self, service: str, action: str, key: str, **params: Any) -> Any:
        assert (service, action, key, params) == ("ec2", "DescribeVpcEndpoints", "VpcEndpoints", {})
        self.describes += 1
        return list(self.endpoints)


def _endpoint(
    endpoint_id: str, vpc: str, state: str, kind: str = "Interface", uid: str = ""
) -> Any:
    tags = [{"Key": "linkplane:uid", "Value": uid}] if uid else []
    return {
        "VpcEndpointId": endpoint_id,
        "VpcId": vpc,
        "State": state,
        "VpcEndpointType": kind,
        "Tags": tags,
    }


async def test_snapshot_counts_the_vpc_quota_and_finds_by_uid_from_one_describe():
    ctx = _SnapshotContext(
        [
            _endpoint("vpce-1", "vpc-a", "available", uid="u1"),
            _endpoint("vpce-2", "vpc-a", "pendingAcceptance"),  # not linkplane's: counts too
            _endpoint("vpce-3", "vpc-a", "deleting", uid="u3"),  # going: neither
            _endpoint("vpce-4", "vpc-a", "available", kind="Gateway"),  # not in the quota
            _endpoint("vpce-5", "vpc-b", "rejected"),
        ]
    )
    snapshots = endpoint_snapshots.EndpointSnapshots(ttl=3600.0)
    assert await snapshots.counted_in_vpc(ctx, "vpc-a") == 2  # type: ignore[arg-type]
    assert await snapshots.counted_in_vpc(ctx, "vpc-b") == 0  # type: ignore[arg-type]
    found = await snapshots.find(ctx, "u1")  # type: ignore[arg-type]
    assert found.endpoint is not None and found.endpoint["VpcEndpointId"] == "vpce-1"
    assert (await snapshots.find(ctx, "u3")).endpoint is None  # type: ignore[arg-type]
    # An endpoint created here after the snapshot counts until a snapshot shows it, once.
    snapshots.created(ctx, "vpc-b", "vpce-6")  # type: ignore[arg-type]
    assert await snapshots.counted_in_vpc(ctx, "vpc-b") == 1  # type: ignore[arg-type]
    assert ctx.describes == 1
    ctx.endpoints.append(_endpoint("vpce-6", "vpc-b", "pending"))
    snapshots.ttl = 0.0
    assert await snapshots.counted_in_vpc(ctx, "vpc-b") == 1  # type: ignore[arg-type]
    assert ctx.describes == 2


async def test_an_endpoint_created_while_the_snapshot_was_asked_counts_once():
    snapshots = endpoint_snapshots.EndpointSnapshots(ttl=3600.0)

    class Racing(_SnapshotContext):
        async def collect(self, service: str, action: str, key: str, **params: Any) -> Any:
            # The create returns while the Describe is in flight, and the answer shows it.
            snapshots.created(self, "vpc-a", "vpce-7")  # type: ignore[arg-type]
            self.endpoints.append(_endpoint("vpce-7", "vpc-a", "pending"))
            return await super().collect(service, action, key, **params)

    ctx = Racing([_endpoint("vpce-1", "vpc-a", "available")])
    assert await snapshots.counted_in_vpc(ctx, "vpc-a") == 2  # type: ignore[arg-type]


async def test_a_refresh_names_the_connections_whose_endpoint_changed_state_or_went():
    told: list[list[str]] = []

    async def on_changed(uids: list[str]) -> None:
        told.append(uids)

    ctx = _SnapshotContext(
        [
            _endpoint("vpce-1", "vpc-a", "pending", uid="turns-available"),
            _endpoint("vpce-2", "vpc-a", "pending", uid="stays-pending"),
            _endpoint("vpce-3", "vpc-a", "available", uid="is-deleted"),
        ]
    )
    snapshots = endpoint_snapshots.EndpointSnapshots(ttl=0.0, on_changed=on_changed)
    await snapshots.find(ctx, "stays-pending")  # type: ignore[arg-type]
    assert told == []  # a first snapshot has nothing to compare with
    ctx.endpoints = [
        _endpoint("vpce-1", "vpc-a", "available", uid="turns-available"),
        _endpoint("vpce-2", "vpc-a", "pending", uid="stays-pending"),
        _endpoint("vpce-3", "vpc-a", "deleted", uid="is-deleted"),
        _endpoint("vpce-4", "vpc-a", "pending", uid="new"),  # its creating pass is looking
        _endpoint("vpce-5", "vpc-a", "failed", uid="first-seen-failed"),
    ]
    await snapshots.find(ctx, "stays-pending")  # type: ignore[arg-type]
    assert told == [["turns-available", "is-deleted", "first-seen-failed"]]
    await snapshots.find(ctx, "stays-pending")  # type: ignore[arg-type]
    assert len(told) == 1  # nothing changed since
