"""The admin HTTP API (behaviour 11), exercised over HTTP like an operator would."""

import json
import urllib.error
import urllib.request

import pytest

from linkplane.sim import server as sim_server


def _call(sim, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{sim.admin_url}/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def test_admin_objects_requests_throttles_config_faults_reset(aws):
    sim = aws.sim
    seeded = _call(sim, "POST", "seed-network", {"account_id": aws.PROVIDER, "azs": 3})
    assert len(seeded["subnet_ids"]) == 3
    assert seeded["az_ids"][0].startswith("use1-az")
    provider = await aws.account(aws.PROVIDER)
    service = await aws.service(provider, allow=[f"arn:aws:iam::{aws.CONSUMER}:root"])

    objects = _call(sim, "GET", f"objects?account={aws.PROVIDER}&region=us-east-1")
    assert [lb["type"] for lb in objects["load_balancers"]] == ["network"]
    assert objects["load_balancers"][0]["state"] == "active"
    [listed] = objects["endpoint_services"]
    assert listed["id"] == service["ServiceId"]
    assert listed["state"] == "Available"
    assert listed["acceptance_required"] is True
    assert listed["allowed_principals"] == [f"arn:aws:iam::{aws.CONSUMER}:root"]
    assert _call(sim, "GET", "objects?account=999999999999")["endpoint_services"] == []

    requests = _call(sim, "GET", f"requests?account={aws.PROVIDER}&action=CreateLoadBalancer")
    assert [(r["service"], r["outcome"], r["region"]) for r in requests] == [
        ("elasticloadbalancing", "ok", "us-east-1")
    ]

    config = _call(sim, "PUT", "config", {"time_scale": 5, "throttling": False})
    assert config["time_scale"] == 5
    assert config["throttling"] is False
    assert sim.world.clock.time_scale == 5

    faults = _call(sim, "PUT", "faults", {"rules": {"*": {"latency_ms": 1}}, "seed": 3})
    assert faults["rules"]["*"]["latency_ms"] == 1
    assert faults["seed"] == 3
    merged = _call(sim, "POST", "faults", {"rules": {"DescribeVpcs": {"unavailable_rate": 0.5}}})
    assert set(merged["rules"]) == {"*", "DescribeVpcs"}
    assert _call(sim, "GET", "throttles") == {}

    _call(sim, "POST", "reset")
    assert _call(sim, "GET", "objects")["endpoint_services"] == []
    assert _call(sim, "GET", "faults")["rules"] == {}
    assert _call(sim, "GET", "requests") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "config", {"time_scale": "fast"}, 400),
        ("PUT", "faults", {"rules": {"X": {"internal_error_rate": 2}}}, 400),
        ("PUT", "faults", {"rules": {"X": {"latency_ms": "slow"}}}, 400),
        ("GET", "nothing-here", None, 404),
    ],
)
def test_admin_rejects_bad_input(sim, method, path, body, status):
    with pytest.raises(urllib.error.HTTPError) as error:
        _call(sim, method, path, body)
    assert error.value.code == status
    assert "error" in json.loads(error.value.read())


def test_start_refuses_a_second_simulator(sim):
    with pytest.raises(RuntimeError, match="already runs in this process"):
        sim_server.start()
