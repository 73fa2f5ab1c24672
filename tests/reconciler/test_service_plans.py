"""The Service reconciler's pure planning: what it compares with what AWS reports, and how often
it asks AWS to verify a private DNS name (no AWS, no database)."""

from __future__ import annotations

from typing import Any

from linkplane.server.aws import endpoint_services
from linkplane.server.domain import specs
from linkplane.server.reconciler import private_dns, service_model, stalls
from linkplane.server.reconciler.workspace import Timing

NLB = "arn:aws:elasticloadbalancing:us-east-1:111111111111:loadbalancer/net/lp/1"


def observed(**overrides: Any) -> endpoint_services.EndpointServiceConfiguration:
    data: dict[str, Any] = {
        "ServiceId": "vpce-svc-1",
        "ServiceState": "Available",
        "AcceptanceRequired": True,
        "NetworkLoadBalancerArns": [NLB],
    }
    data.update(overrides)
    return endpoint_services.EndpointServiceConfiguration.from_aws(data, "us-east-1")


def target(**overrides: Any) -> service_model.Target:
    spec = specs.ServiceSpec(
        provider_account="projects/p/accounts/111111111111", region="us-east-1"
    )
    for key, value in overrides.items():
        setattr(spec, key, value)
    return service_model.Target.of(spec, "us-east-1")


def test_a_service_as_aws_reports_it_matches_its_spec():
    # AWS omits the IP types of an IPv4 service and lists the home Region among the supported.
    same = observed(
        SupportedRegions=[{"Region": "us-east-1", "ServiceState": "Available"}],
    )
    assert service_model.plan_configuration(target(), [NLB], same) == []
    dual = observed(SupportedIpAddressTypes=["ipv6", "IPv4"])
    assert (
        service_model.plan_configuration(
            target(supported_ip_address_types=["ipv4", "ipv6"]), [NLB], dual
        )
        == []
    )


def test_ip_types_and_regions_are_planned_as_add_and_remove():
    planned = service_model.plan_configuration(
        target(supported_ip_address_types=["ipv6"], supported_regions=["us-west-2"]),
        [NLB],
        observed(
            SupportedRegions=[
                {"Region": "us-east-1", "ServiceState": "Available"},
                {"Region": "eu-west-1", "ServiceState": "Available"},
                # A Region AWS is removing no longer counts: nothing to remove twice.
                {"Region": "ap-south-1", "ServiceState": "Deleting"},
            ]
        ),
    )
    by_field = {c.field: c for c in planned}
    ip = by_field["configuration.supported_ip_address_types"]
    assert ip.params == {
        "AddSupportedIpAddressTypes": ["ipv6"],
        "RemoveSupportedIpAddressTypes": ["ipv4"],
    }
    assert (ip.wanted, ip.observed) == (["ipv6"], ["ipv4"])
    regions = by_field["configuration.supported_regions"]
    assert regions.params == {
        "AddSupportedRegions": ["us-west-2"],
        "RemoveSupportedRegions": ["eu-west-1"],
    }


def test_a_change_aws_ignores_stalls_after_three_attempts():
    work = service_model.Work(
        status={},
        book=service_model.Bookkeeping.load({}),
        now=1000.0,
    )
    change = service_model.plan_configuration(
        target(supported_ip_address_types=["ipv4", "ipv6"]), [NLB], observed()
    )[0]
    allowed = []
    for attempt in range(5):
        work.now = 1000.0 + attempt
        allowed.append(work.allowed("ModifyVpcEndpointServiceConfiguration", change))
    assert allowed == [True, True, True, False, False]
    assert {s.field for s in work.stalled} == {"configuration.supported_ip_address_types"}
    saved: dict[str, Any] = {}
    work.book.save(saved)
    assert service_model.Bookkeeping.load(saved).guard.stalled_fields() == [
        "configuration.supported_ip_address_types"
    ]
    assert saved[stalls.STATUS_KEY]


def test_dns_rechecks_grow_from_a_minute_to_an_hour_at_default_timing():
    timing = Timing(5.0, 300.0)
    delays = [private_dns.recheck_delay(timing, n) for n in range(8)]
    assert delays[0] == 60.0
    assert delays[1] == 120.0
    assert max(delays) == 3600.0
    assert delays == sorted(delays)


def test_the_dns_schedule_survives_a_round_trip_and_reads_older_rows():
    status: dict[str, Any] = {"dns_verification_requested": 3, "targets_generation": 3}
    book = service_model.Bookkeeping.load(status)
    assert book.dns.generation == 3 and book.targets_generation == 3
    book.dns.attempts, book.dns.next_at, book.dns.sent = 2, 1234.5, ["op1"]
    book.save(status)
    assert "dns_verification_requested" not in status
    again = service_model.Bookkeeping.load(status).dns
    assert (again.generation, again.attempts, again.next_at, again.sent) == (3, 2, 1234.5, ["op1"])
