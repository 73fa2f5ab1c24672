"""The acceptance policy: auto-accept with limits, re-evaluation, audited decisions with the
consumer's request message, the provider's inventory (outside consumers too), many accounts."""

from __future__ import annotations

import asyncio

from linkplane.v1 import audit_service_pb2, audit_service_pb2_grpc, service_pb2
from tests.conformance.harness import SC, Conn, Svc, Tenant, eventually, live

AUTOMATIC = service_pb2.AcceptancePolicy.MODE_AUTOMATIC


async def test_auto_accept_up_to_the_connection_limit(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.30.0.0/16"), await tenant.account("10.31.0.0/16")
    second_vpc = await sim.seed_network(consumer.account_id, "10.32.0.0/16")
    service = await api.publish(
        "limited",
        tenant.managed_service(
            provider,
            allowed=[consumer.account_id],
            accept_rules=[
                service_pb2.AcceptRule(principal=consumer.account_id, connection_limit=1)
            ],
        ),
    )
    first = await api.connect("first", tenant.connection(consumer, service=service.name))
    first = await api.wait_connection(first.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    second = await api.connect(
        "second", tenant.connection(consumer, service=service.name, network=second_vpc)
    )
    # Over the limit: it waits for a person, in linkplane and in AWS.
    assert second.state == Conn.STATE_PENDING_ACCEPTANCE
    listed = await eventually(
        lambda: api.inventory(service.name),
        lambda found: {c.endpoint_id for c in found} == {first.endpoint_id, second.endpoint_id},
    )
    inventory = {c.endpoint_id: c for c in listed}
    accepted = inventory[first.endpoint_id].decision
    assert accepted.verdict == SC.Decision.VERDICT_ACCEPTED and accepted.automatic
    assert accepted.actor == f"policy:accept:{consumer.account_id}"
    assert inventory[second.endpoint_id].state == SC.STATE_PENDING_ACCEPTANCE
    assert not inventory[second.endpoint_id].decision.verdict
    assert (await sim.endpoint(consumer.account_id, first.endpoint_id))["State"] == "available"
    assert (await sim.endpoint(consumer.account_id, second.endpoint_id))[
        "State"
    ] == "pendingAcceptance"
    # AWS keeps asking the provider: acceptance stays required while rules exist.
    config = await sim.service_configuration(provider.account_id, service.service_id)
    assert config["AcceptanceRequired"] is True

    # Once the first connection is gone, the waiting one fits under the limit.
    done = await api.delete_connection(first.name)
    assert not done.HasField("error"), done.error
    second = await api.wait_connection(second.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    assert (await sim.endpoint(consumer.account_id, second.endpoint_id))["State"] == "available"


async def test_reevaluation_rejects_live_connections_no_longer_allowed(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.33.0.0/16")
    kept, dropped = await tenant.account("10.34.0.0/16"), await tenant.account("10.35.0.0/16")
    service = await api.publish(
        "strict",
        tenant.managed_service(
            provider,
            allowed=[kept.account_id, dropped.account_id],
            accept_rules=[
                service_pb2.AcceptRule(principal=kept.account_id),
                service_pb2.AcceptRule(principal=dropped.account_id),
            ],
            reevaluate_existing=True,
        ),
    )
    keep = await api.connect("keep", tenant.connection(kept, service=service.name))
    drop = await api.connect("drop", tenant.connection(dropped, service=service.name))
    for name in (keep.name, drop.name):
        await api.wait_connection(name, lambda c: c.state == Conn.STATE_AVAILABLE)

    policy = service_pb2.AcceptancePolicy(
        accept_rules=[service_pb2.AcceptRule(principal=kept.account_id)],
        reject_principals=[dropped.account_id],
        reevaluate_existing=True,
    )
    done = await api.update_service(
        Svc(name=service.name, acceptance_policy=policy), "acceptance_policy"
    )
    assert not done.HasField("error"), done.error
    drop = await api.wait_connection(drop.name, lambda c: c.state == Conn.STATE_REJECTED)
    keep = await api.get_connection(keep.name)
    assert keep.state == Conn.STATE_AVAILABLE
    assert (await sim.endpoint(dropped.account_id, drop.endpoint_id))["State"] == "rejected"
    assert (await sim.endpoint(kept.account_id, keep.endpoint_id))["State"] == "available"
    inventory = {c.endpoint_id: c for c in await api.inventory(service.name)}
    decision = inventory[drop.endpoint_id].decision
    assert decision.verdict == SC.Decision.VERDICT_REJECTED and decision.automatic
    assert decision.actor == "policy:reevaluate"


async def test_decisions_are_recorded_with_the_request_message(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.36.0.0/16")
    yes, no = await tenant.account("10.37.0.0/16"), await tenant.account("10.38.0.0/16")
    service = await api.publish(
        "audited", tenant.managed_service(provider, allowed=[yes.account_id, no.account_id])
    )
    asking = await api.connect(
        "asking",
        tenant.connection(yes, service=service.name, request_message="checkout needs orders API"),
    )
    pushy = await api.connect(
        "pushy", tenant.connection(no, service=service.name, request_message="let me in")
    )
    listed = await eventually(
        lambda: api.inventory(service.name),
        lambda found: {c.endpoint_id for c in found} == {asking.endpoint_id, pushy.endpoint_id},
    )
    waiting = {c.endpoint_id: c for c in listed}
    assert waiting[asking.endpoint_id].request_message == "checkout needs orders API"
    assert waiting[asking.endpoint_id].connection == asking.name
    assert waiting[pushy.endpoint_id].request_message == "let me in"
    assert not waiting[asking.endpoint_id].decision.verdict

    await api.accept(service.name, [asking.endpoint_id], reason="approved in CHG-42")
    await api.reject(service.name, [pushy.endpoint_id], reason="unknown team")
    inventory = {c.endpoint_id: c for c in await api.inventory(service.name)}
    accepted, rejected = inventory[asking.endpoint_id], inventory[pushy.endpoint_id]
    assert accepted.decision.verdict == SC.Decision.VERDICT_ACCEPTED
    assert accepted.decision.reason == "approved in CHG-42"
    assert not accepted.decision.automatic
    assert accepted.decision.actor and not accepted.decision.actor.startswith("policy:")
    assert accepted.decision.decide_time.seconds > 0
    assert rejected.decision.verdict == SC.Decision.VERDICT_REJECTED
    assert rejected.decision.reason == "unknown team"
    assert not rejected.decision.automatic
    # The audit log says who decided what, when and why.
    audit = audit_service_pb2_grpc.AuditServiceStub(api.channel)
    events = (
        await audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(parent=api.parent, page_size=1000)
        )
    ).audit_events
    by_resource = {
        e.resource: e for e in events if e.method in {"ConnectionAccepted", "ConnectionRejected"}
    }
    yes_event = by_resource[f"{service.name}/serviceConnections/{asking.endpoint_id}"]
    assert yes_event.method == "ConnectionAccepted"
    assert yes_event.actor == accepted.decision.actor
    assert yes_event.details["reason"] == "approved in CHG-42"
    no_event = by_resource[f"{service.name}/serviceConnections/{pushy.endpoint_id}"]
    assert no_event.method == "ConnectionRejected"
    assert no_event.details["reason"] == "unknown team"
    # The decisions took effect in AWS.
    await api.wait_connection(asking.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    assert (await sim.endpoint(yes.account_id, asking.endpoint_id))["State"] == "available"
    assert (await sim.endpoint(no.account_id, pushy.endpoint_id))["State"] == "rejected"


async def test_inventory_includes_consumers_outside_linkplane(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.39.0.0/16")
    member = await tenant.account("10.40.0.0/16")
    outsider = await tenant.account("10.41.0.0/16", register=False)  # not known to linkplane
    service = await api.publish(
        "popular",
        tenant.managed_service(provider, allowed=[member.account_id, outsider.account_id]),
    )
    ours = await api.connect("ours", tenant.connection(member, service=service.name))
    # A consumer that never heard of linkplane creates its endpoint by hand.
    outsider_ec2 = await sim.client(outsider.account_id, "ec2")
    by_hand = (
        await outsider_ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=outsider.network.vpc_id,
            ServiceName=service.service_name,
            SubnetIds=outsider.network.subnet_ids,
        )
    )["VpcEndpoint"]["VpcEndpointId"]

    listed = await eventually(
        lambda: api.inventory(service.name),
        lambda found: {c.endpoint_id for c in found} == {ours.endpoint_id, by_hand},
    )
    rows = {c.endpoint_id: c for c in listed}
    assert rows[by_hand].owner_account_id == outsider.account_id
    assert rows[by_hand].connection == ""
    # AWS does not tell a provider the VPC of someone else's endpoint; linkplane knows its own.
    assert rows[by_hand].vpc_id == ""
    assert rows[ours.endpoint_id].vpc_id == member.network.vpc_id
    assert rows[by_hand].state == SC.STATE_PENDING_ACCEPTANCE
    assert rows[ours.endpoint_id].connection == ours.name
    assert rows[ours.endpoint_id].owner_account_id == member.account_id
    pending = await api.inventory(service.name, filter="state = PENDING_ACCEPTANCE")
    assert {c.endpoint_id for c in pending} == {ours.endpoint_id, by_hand}

    # The provider decides on the outsider through linkplane like on anyone else.
    await api.accept(service.name, [by_hand], reason="partner contract")
    outsider_state = await eventually(
        lambda: sim.endpoint(outsider.account_id, by_hand),
        lambda e: e["State"] == "available",
    )
    assert outsider_state["VpcId"] == outsider.network.vpc_id
    row = await eventually(
        lambda: api.inventory(service.name, filter=f'owner_account_id = "{outsider.account_id}"'),
        lambda found: [c.state for c in found] == [SC.STATE_AVAILABLE],
    )
    assert row[0].decision.reason == "partner contract"
    service_now = await api.wait_service(service.name, lambda s: s.connection_counts.total == 2)
    assert service_now.connection_counts.available == 1
    assert service_now.connection_counts.pending_acceptance == 1


async def test_many_consumer_accounts(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.42.0.0/16")
    consumers = [await tenant.account(f"10.{50 + i}.0.0/16") for i in range(6)]
    service = await api.publish(
        "wide",
        tenant.managed_service(provider, allowed=[c.account_id for c in consumers], mode=AUTOMATIC),
    )
    created = await asyncio.gather(
        *(
            api.connect(f"tenant-{i}", tenant.connection(c, service=service.name))
            for i, c in enumerate(consumers)
        )
    )
    connections = [
        await api.wait_connection(c.name, lambda c: c.state == Conn.STATE_AVAILABLE)
        for c in created
    ]
    # One endpoint per account, each in its own account and VPC, all available in AWS.
    for consumer, connection in zip(consumers, connections, strict=True):
        [endpoint] = [e for e in await sim.endpoints(consumer.account_id) if live(e["state"])]
        assert endpoint["id"] == connection.endpoint_id
        assert endpoint["vpc_id"] == consumer.network.vpc_id
        assert endpoint["state"] == "available"
        assert endpoint["tags"]["linkplane:uid"] == connection.uid
    # The inventory follows the consumers' view within a Service pass.
    inventory = await eventually(
        lambda: api.inventory(service.name),
        lambda found: all(c.state == SC.STATE_AVAILABLE for c in found),
    )
    assert {c.owner_account_id for c in inventory} == {c.account_id for c in consumers}
    counted = await api.wait_service(
        service.name, lambda s: s.connection_counts.available == len(consumers)
    )
    assert counted.connection_counts.total == len(consumers)
