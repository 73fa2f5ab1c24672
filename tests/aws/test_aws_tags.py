"""Ownership tags, ClientTokens and names: what makes a repeated create adopt, not duplicate."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkplane.server.aws import calls, tags

uids = st.uuids().map(str)
purposes = st.text(min_size=1, max_size=40)


@given(uid=uids, generation=st.integers(0, 2**63), purpose=purposes)
def test_client_token_is_short_ascii_and_stable(uid: str, generation: int, purpose: str) -> None:
    token = tags.deterministic_client_token(uid, generation, purpose)
    assert len(token) <= 64
    assert token.isascii()
    assert token == tags.deterministic_client_token(uid, generation, purpose)


@given(uid=uids, generation=st.integers(0, 1000), purpose=purposes)
def test_client_token_changes_with_every_input(uid: str, generation: int, purpose: str) -> None:
    token = tags.deterministic_client_token(uid, generation, purpose)
    # A new generation must get a new token, or AWS answers IdempotentParameterMismatch when
    # the parameters changed; another purpose or resource must never collide.
    assert token != tags.deterministic_client_token(uid, generation + 1, purpose)
    assert token != tags.deterministic_client_token(uid, generation, purpose + "x")
    assert token != tags.deterministic_client_token(uid + "x", generation, purpose)


@given(uid=uids, purpose=purposes)
def test_names_fit_elbv2_rules(uid: str, purpose: str) -> None:
    name = tags.deterministic_name(uid, purpose)
    assert len(name) <= 32
    assert re.fullmatch(r"[a-z0-9-]+", name)
    assert not name.endswith("-")
    assert name == tags.deterministic_name(uid, purpose)
    assert name != tags.deterministic_name(uid + "x", purpose)


def test_tag_specifications_carry_ownership_and_labels() -> None:
    specs = tags.linkplane_tags("u-1", "endpoint", "payments-client", {"team": "payments"})
    assert specs == [
        {
            "ResourceType": "vpc-endpoint",
            "Tags": [
                {"Key": "linkplane:uid", "Value": "u-1"},
                {"Key": "linkplane:resource", "Value": "payments-client"},
                {"Key": "linkplane:kind", "Value": "endpoint"},
                {"Key": "team", "Value": "payments"},
            ],
        }
    ]
    service = tags.linkplane_tags("u-2", "endpoint-service", "payments")
    assert service[0]["ResourceType"] == "vpc-endpoint-service"


@pytest.mark.parametrize(
    "labels",
    [
        {"aws:owner": "x"},
        {"linkplane:uid": "someone-else"},
        {"k" * 129: "v"},
        {"key": "v" * 257},
        {f"label-{i}": "v" for i in range(48)},  # 48 + 3 ownership tags > 50.
    ],
)
def test_labels_aws_would_reject_or_that_forge_ownership_are_refused(
    labels: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match=r"label|tags"):
        tags.tags("u-1", "endpoint", "name", labels)


def test_elbv2_kinds_have_no_tag_specifications() -> None:
    with pytest.raises(ValueError, match="ELBv2"):
        tags.linkplane_tags("u-1", "load-balancer", "name")


def test_tag_value_reads_both_apis_shape() -> None:
    obj = {"Tags": [{"Key": "a", "Value": "1"}, {"Key": tags.UID_KEY, "Value": "u-1"}]}
    assert tags.tag_value(obj, tags.UID_KEY) == "u-1"
    assert tags.tag_value(obj, "missing") is None
    assert tags.tag_value({}, tags.UID_KEY) is None


def test_helpers_refuse_extras_that_would_override_their_invariants() -> None:
    with pytest.raises(ValueError, match="VpcEndpointType"):
        calls.merge_params({"VpcEndpointType": "Interface"}, {"VpcEndpointType": "Gateway"})
    assert calls.merge_params({"A": 1}, {"B": 2}) == {"A": 1, "B": 2}


def test_chunks_deduplicate_and_keep_order() -> None:
    assert calls.chunks(["c", "a", "c", "b"], size=2) == [["c", "a"], ["b"]]
    assert calls.chunks([]) == []
