"""State normalisation and spec validation rules."""

from __future__ import annotations

import pytest

from linkplane.server.domain import specs, states, validation


@pytest.mark.parametrize(
    ("wire", "canonical"),
    [
        ("pendingAcceptance", "PENDING_ACCEPTANCE"),
        ("PendingAcceptance", "PENDING_ACCEPTANCE"),
        ("available", "AVAILABLE"),
        ("Rejected", "REJECTED"),
        ("partial", "PARTIAL"),
        ("AVAILABLE", "AVAILABLE"),
        ("somethingNew", "FAILED"),
        (None, "FAILED"),
    ],
)
def test_endpoint_states_normalise(wire, canonical):
    assert states.normalise_endpoint_state(wire) == canonical


@pytest.mark.parametrize(
    ("wire", "counts"),
    [
        ("available", True),
        ("pendingAcceptance", True),
        ("Deleting", False),
        ("rejected", False),
        ("Expired", False),
        ("somethingNew", True),  # not known to have freed its slot
        (None, True),
    ],
)
def test_endpoint_states_against_the_vpc_quota(wire, counts):
    assert states.counts_against_quota(wire) is counts


@pytest.mark.parametrize(
    ("principal", "ok"),
    [
        ("123456789012", True),
        ("arn:aws:iam::123456789012:root", True),
        ("arn:aws:iam::123456789012:role/deploy", True),
        ("arn:aws:iam::123456789012:role/path/deploy", False),  # AWS rejects paths
        ("arn:aws:organizations::123456789012:organization/o-abcdefghij", True),
        ("arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-abcdefgh", True),
        ("12345", False),
        ("*", True),
    ],
)
def test_principals(principal, ok):
    assert validation.is_principal(principal) is ok


def test_service_rules_report_every_problem_with_its_path():
    spec = specs.ServiceSpec(
        provider_account="projects/p/accounts/111111111111",
        region="us-east-1",
        load_balancer=specs.LoadBalancerSpec(
            managed=specs.ManagedLoadBalancerSpec(
                subnet_ids=["subnet-0123456789abcdef0"],
                listeners=[specs.ListenerSpec(port=443), specs.ListenerSpec(port=443)],
                targets=[specs.TargetSpec(id="not-an-ip")],
            )
        ),
        acceptance_policy=specs.AcceptancePolicySpec(
            accept_rules=[specs.AcceptRule("222222222222")], reject_principals=["222222222222"]
        ),
    )
    fields = [v.field for v in validation.check_service(spec, "service")]
    assert fields == [
        "service.load_balancer.managed.listeners[1].port",
        "service.load_balancer.managed.targets[0].id",
        "service.acceptance_policy.reject_principals[0]",
    ]


def test_specs_round_trip_through_json():
    spec = specs.ServiceSpec(
        provider_account="projects/p/accounts/111111111111",
        region="us-east-1",
        load_balancer=specs.LoadBalancerSpec(
            managed=specs.ManagedLoadBalancerSpec(
                subnet_ids=["subnet-0123456789abcdef0"], listeners=[specs.ListenerSpec(443)]
            )
        ),
        acceptance_policy=specs.AcceptancePolicySpec(accept_rules=[specs.AcceptRule("1" * 12, 2)]),
    )
    data = specs.to_json(spec)
    data["field_from_the_future"] = 1
    assert specs.service_from_json(data) == spec
