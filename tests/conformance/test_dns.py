"""Private DNS end to end: the provider's name → TXT record → verification (asked for with
VerifyServicePrivateDns) → the consumer's endpoint gets the name (consumer private DNS)."""

from __future__ import annotations

import uuid

from linkplane.v1 import provider_service_pb2, service_pb2
from tests.conformance.harness import TRUE, Conn, Svc, Tenant, condition

DNS = service_pb2.PrivateDnsVerification


async def test_private_dns_txt_verify_then_enabled_for_consumers(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.80.0.0/16"), await tenant.account()
    domain = f"{tenant.project}.example.com"
    spec = tenant.managed_service(provider, allowed=[consumer.account_id], mode=1)  # AUTOMATIC
    spec.private_dns_name = f"api.{domain}"
    service = await api.publish("named", spec)

    # 1. linkplane shows the TXT record AWS wants; AWS has not verified the name.
    unverified = await api.wait_service(
        service.name,
        lambda s: (
            bool(s.private_dns_verification.txt_record_value)
            and s.private_dns_verification.state != DNS.STATE_VERIFIED
        ),
    )
    record = unverified.private_dns_verification
    config = await sim.service_configuration(provider.account_id, service.service_id)
    assert config["PrivateDnsName"] == f"api.{domain}"
    assert config["PrivateDnsNameConfiguration"]["Name"] == record.txt_record_name
    assert config["PrivateDnsNameConfiguration"]["Value"] == record.txt_record_value
    assert config["PrivateDnsNameConfiguration"]["State"] != "verified"

    # A consumer asking for private DNS now gets an available endpoint without it, told why.
    created = await api.connect(
        "early", tenant.connection(consumer, service=service.name, private_dns_enabled=True)
    )
    early = await api.wait_connection(
        created.name,
        lambda c: (
            c.state == Conn.STATE_AVAILABLE
            and condition(c, "PrivateDns") is not None
            and condition(c, "PrivateDns").reason == "AwaitingVerification"
        ),
    )
    described = await sim.endpoint(consumer.account_id, early.endpoint_id)
    assert described["PrivateDnsEnabled"] is False
    assert f"api.{domain}" not in {d["DnsName"] for d in described["DnsEntries"]}

    # 2. The provider publishes the TXT record (Route 53, by hand) and asks linkplane to verify.
    route53 = await sim.client(provider.account_id, "route53")
    zone = await route53.create_hosted_zone(Name=domain, CallerReference=uuid.uuid4().hex)
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
    verified = Svc()
    (
        await api.succeed(
            await api.provider.VerifyServicePrivateDns(
                provider_service_pb2.VerifyServicePrivateDnsRequest(
                    name=service.name, request_id=str(uuid.uuid4())
                )
            )
        )
    ).Unpack(verified)
    assert verified.private_dns_verification.state == DNS.STATE_VERIFIED
    assert condition(verified, "PrivateDnsVerified").status == TRUE
    config = await sim.service_configuration(provider.account_id, service.service_id)
    assert config["PrivateDnsNameConfiguration"]["State"] == "verified"

    # 3. The waiting consumer gets private DNS enabled, in linkplane and in AWS.
    enabled = await api.wait_connection(
        early.name,
        lambda c: (
            condition(c, "PrivateDns") is not None
            and condition(c, "PrivateDns").reason == "Enabled"
            and condition(c, "Ready").status == TRUE
        ),
    )
    described = await sim.endpoint(consumer.account_id, enabled.endpoint_id)
    assert described["PrivateDnsEnabled"] is True
    assert f"api.{domain}" in {d["DnsName"] for d in described["DnsEntries"]}
    assert f"api.{domain}" in {d.dns_name for d in enabled.dns_entries}
    # It took exactly one ModifyVpcEndpoint (no loop).
    modifies = await sim.requests(consumer.account_id, "ModifyVpcEndpoint")
    assert [m["outcome"] for m in modifies] == ["ok"]
