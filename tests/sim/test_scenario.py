"""The scenario documented in docs/sim.md, run as written (linkplane.sim.scenario)."""

import ipaddress

from linkplane.sim import scenario


async def test_documented_scenario(sim):
    result = await scenario.run(sim.endpoint_url)
    assert result["initial_state"] == "pendingAcceptance"
    assert result["accepted_state"] == "available"
    assert len(result["eni_ips"]) == 2
    assert all(
        ipaddress.ip_address(ip) in ipaddress.ip_network("10.0.0.0/16") for ip in result["eni_ips"]
    )
    assert len(result["dns_names"]) == 3
    assert all(result["service_id"] in name for name in result["dns_names"])
    assert result["delete_while_live"] == ["ExistingVpcEndpointConnections"]
    assert result["delete_after_reject"] == []
    owners = {r["account"] for r in sim.requests() if r["action"] == "CreateVpcEndpoint"}
    assert owners == {scenario.CONSUMER}
