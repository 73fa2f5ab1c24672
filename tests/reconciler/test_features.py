"""What the reconcilers promise beyond the happy path: consumers outside linkplane, pre-flight
checks, private DNS verification, and re-evaluating live connections when rules change."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from linkplane.v1 import (
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.reconciler.conftest import (
    CONSUMER,
    OTHER_CONSUMER,
    PROVIDER,
    connection_spec,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.support import simulator

Conn = connection_pb2.Connection
SC = service_pb2.ServiceConnection


async def test_consumers_outside_linkplane_are_in_the_inventory(api, networks, project, sim):
    await api.register(project, PROVIDER)
    service = await publish(
        api, project, "shared", managed_service(project, networks, allowed=(OTHER_CONSUMER,))
    )
    async with simulator.acting_as(sim.endpoint_url, OTHER_CONSUMER, "ec2") as ec2:
        created = await ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=networks[OTHER_CONSUMER]["vpc_id"],
            ServiceName=service.service_name,
            SubnetIds=networks[OTHER_CONSUMER]["subnet_ids"],
        )
    endpoint_id = created["VpcEndpoint"]["VpcEndpointId"]
    inventory = await eventually(
        lambda: api.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(
                parent=service.name, filter="state = PENDING_ACCEPTANCE"
            )
        ),
        lambda r: [c.endpoint_id for c in r.service_connections] == [endpoint_id],
    )
    outsider = inventory.service_connections[0]
    assert outsider.owner_account_id == OTHER_CONSUMER
    assert outsider.connection == "", "not a linkplane Connection"

    accepted = await api.provider.AcceptServiceConnections(
        provider_service_pb2.AcceptServiceConnectionsRequest(
            service=service.name, endpoint_ids=[endpoint_id], reason="known partner"
        )
    )
    done = await wait_done(api, accepted.name)
    response = provider_service_pb2.AcceptServiceConnectionsResponse()
    done.response.Unpack(response)
    assert not response.failures
    await eventually(
        lambda: api.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service.name)
        ),
        lambda r: r.service_connections[0].state in {SC.STATE_PENDING, SC.STATE_AVAILABLE},
    )


async def test_subnet_in_an_unsupported_zone_fails_before_aws_does(api, networks, project):
    await api.register(project, PROVIDER, CONSUMER)
    one_zone = managed_service(project, networks)
    del one_zone.load_balancer.managed.subnet_ids[1:]  # the service is offered in one AZ only
    service = await publish(api, project, "onezone", one_zone)
    connection = connection_spec(project, networks[CONSUMER], service.name)
    connection.subnet_ids[:] = networks[CONSUMER]["subnet_ids"][1:]  # the other AZ
    created = await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}", connection_id="wrongzone", connection=connection
        )
    )
    done = await wait_done(api, created.name)
    assert done.HasField("error")
    assert "UnsupportedAvailabilityZone" in done.error.message
    failed = await api.consumer.GetConnection(
        consumer_service_pb2.GetConnectionRequest(name=f"projects/{project}/connections/wrongzone")
    )
    assert failed.state == Conn.STATE_FAILED
    assert failed.last_aws_error.code == "UnsupportedAvailabilityZone"
    assert not failed.endpoint_id, "nothing was created in AWS"


async def test_private_dns_name_is_verified_through_its_txt_record(api, networks, project, sim):
    await api.register(project, PROVIDER)
    domain = f"{project}.example.com"
    spec = managed_service(project, networks)
    spec.private_dns_name = f"api.{domain}"
    service = await publish(api, project, "dns", spec)
    failed = await eventually(
        lambda: api.provider.GetService(provider_service_pb2.GetServiceRequest(name=service.name)),
        lambda s: (
            s.private_dns_verification.state == service_pb2.PrivateDnsVerification.STATE_FAILED
        ),
    )
    record = failed.private_dns_verification
    assert record.txt_record_name
    assert record.txt_record_value

    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "route53") as route53:
        zone = await route53.create_hosted_zone(Name=domain, CallerReference=project)
        await route53.change_resource_record_sets(
            HostedZoneId=zone["HostedZone"]["Id"],
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": record.txt_record_name,
                            "Type": "TXT",
                            "TTL": 300,
                            "ResourceRecords": [{"Value": f'"{record.txt_record_value}"'}],
                        },
                    }
                ]
            },
        )
    # Any spec change asks AWS to verify again (once per generation).
    await api.provider.UpdateService(
        provider_service_pb2.UpdateServiceRequest(
            service=service_pb2.Service(name=service.name, labels={"dns": "published"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
        )
    )
    verified = await eventually(
        lambda: api.provider.GetService(provider_service_pb2.GetServiceRequest(name=service.name)),
        lambda s: (
            s.private_dns_verification.state == service_pb2.PrivateDnsVerification.STATE_VERIFIED
        ),
    )
    condition = {c.type: c for c in verified.conditions}["PrivateDnsVerified"]
    assert condition.status == condition.STATUS_TRUE


async def test_changed_rules_reject_live_connections_when_asked(api, networks, project):
    await api.register(project, PROVIDER, CONSUMER)
    spec = managed_service(
        project,
        networks,
        accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)],
        reevaluate_existing=True,
    )
    service = await publish(api, project, "strict", spec)
    created = await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id="soon-gone",
            connection=connection_spec(project, networks[CONSUMER], service.name),
        )
    )
    await wait_done(api, created.name)
    name = f"projects/{project}/connections/soon-gone"
    await eventually(
        lambda: api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name)),
        lambda c: c.state == Conn.STATE_AVAILABLE,
    )
    current = await api.provider.GetService(
        provider_service_pb2.GetServiceRequest(name=service.name)
    )
    policy = service_pb2.AcceptancePolicy()
    policy.CopyFrom(current.acceptance_policy)
    del policy.accept_rules[:]
    policy.reject_principals.append(CONSUMER)
    await api.provider.UpdateService(
        provider_service_pb2.UpdateServiceRequest(
            service=service_pb2.Service(name=service.name, acceptance_policy=policy),
            update_mask=field_mask_pb2.FieldMask(paths=["acceptance_policy"]),
        )
    )
    rejected = await eventually(
        lambda: api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name)),
        lambda c: c.state == Conn.STATE_REJECTED,
    )
    assert rejected.endpoint_id
    inventory = await api.provider.ListServiceConnections(
        provider_service_pb2.ListServiceConnectionsRequest(parent=service.name)
    )
    decision = inventory.service_connections[0].decision
    assert decision.verdict == SC.Decision.VERDICT_REJECTED
    assert decision.automatic
    assert decision.actor == "policy:reevaluate"


async def test_label_changes_reach_the_aws_tags(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(
        api,
        project,
        "tagged",
        managed_service(
            project, networks, accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)]
        ),
    )
    spec = connection_spec(project, networks[CONSUMER], service.name)
    spec.labels["team"] = "checkout"
    spec.labels["tier"] = "gold"
    created = await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}", connection_id="tagged", connection=spec
        )
    )
    await wait_done(api, created.name)
    name = f"projects/{project}/connections/tagged"
    current = await api.consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))
    await api.consumer.UpdateConnection(
        consumer_service_pb2.UpdateConnectionRequest(
            connection=connection_pb2.Connection(name=name, labels={"team": "payments"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
        )
    )

    def endpoint_tags() -> dict[str, str]:
        for endpoint in sim.objects(account=CONSUMER)["endpoints"]:
            if endpoint["id"] == current.endpoint_id:
                return dict(endpoint["tags"])
        return {}

    async def probe() -> dict[str, str]:
        return endpoint_tags()

    tags_now = await eventually(probe, lambda t: t.get("team") == "payments" and "tier" not in t)
    assert tags_now["linkplane:uid"] == current.uid, "ownership tags are never touched"
