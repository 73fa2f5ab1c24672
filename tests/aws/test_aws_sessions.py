"""Clients and credentials against a real moto server over HTTP: accounts stay apart."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

import hypothesis
import pytest
from botocore import utils as botocore_utils
from hypothesis import strategies

from linkplane.server.aws import calls, errors, sessions, throttlers

REGION = "us-east-1"
BASE = sessions.AccountRef(account_id="123456789012")
TENANT = sessions.AccountRef(
    account_id="222222222222",
    role_arn="arn:aws:iam::222222222222:role/linkplane",
    external_id="tenant-secret",
)


def context(clients: sessions.AwsClients, account: sessions.AccountRef) -> calls.Context:
    return calls.Context(clients, throttlers.Limiter(), account, REGION)


async def test_assumed_role_acts_in_the_other_account(clients: sessions.AwsClients) -> None:
    tenant = context(clients, TENANT)
    base = context(clients, BASE)

    identity = await tenant.call("sts", "GetCallerIdentity")
    assert identity["Account"] == "222222222222"
    assert "linkplane-222222222222" in identity["Arn"]  # The RoleSessionName.
    assert (await base.call("sts", "GetCallerIdentity"))["Account"] == "123456789012"

    vpc = (await tenant.call("ec2", "CreateVpc", CidrBlock="10.42.0.0/16"))["Vpc"]
    assert vpc["OwnerId"] == "222222222222"
    seen = await tenant.call("ec2", "DescribeVpcs", VpcIds=[vpc["VpcId"]])
    assert [v["VpcId"] for v in seen["Vpcs"]] == [vpc["VpcId"]]

    # The base account's backend has no such VPC.
    with pytest.raises(errors.AwsError) as caught:
        await base.call("ec2", "DescribeVpcs", VpcIds=[vpc["VpcId"]])
    assert caught.value.code == "InvalidVpcID.NotFound"
    assert errors.is_not_found(caught.value)
    assert not caught.value.retryable


async def test_clients_are_created_once_and_credentials_fetched_once_per_account(
    clients: sessions.AwsClients,
) -> None:
    first, second = await asyncio.gather(clients.ec2(TENANT, REGION), clients.ec2(TENANT, REGION))
    assert first is second
    assert await clients.ec2(TENANT, "eu-west-1") is not first
    assert await clients.elbv2(TENANT, REGION) is not first
    tenant = context(clients, TENANT)
    for _ in range(5):
        await tenant.call("ec2", "DescribeVpcs")
    await context(clients, TENANT).call("elbv2", "DescribeLoadBalancers")
    # One AssumeRole serves every client of the account while the credentials are fresh.
    assert clients.assume_role_calls == 1


async def test_credentials_are_refreshed_before_they_expire(settings: sessions.Settings) -> None:
    # Assumed credentials last 900 s; asking for refresh 950 s before expiry makes every
    # signed request find them due, which is what happens to a long-lived process hourly.
    eager = sessions.Settings(
        **{
            **settings.__dict__,
            "role_duration_seconds": 900,
            "refresh_advisory_seconds": 1000,
            "refresh_mandatory_seconds": 950,
        }
    )
    async with sessions.AwsClients(eager) as clients:
        tenant = context(clients, TENANT)
        for _ in range(3):
            result = await tenant.call("sts", "GetCallerIdentity")
            assert result["Account"] == "222222222222"
        assert clients.assume_role_calls >= 3


async def test_closed_clients_refuse_new_work(settings: sessions.Settings) -> None:
    clients = sessions.AwsClients(settings)
    await clients.ec2(BASE, REGION)
    await clients.close()
    with pytest.raises(RuntimeError, match="closed"):
        await clients.ec2(BASE, REGION)


async def test_an_unreachable_endpoint_is_a_transient_error() -> None:
    unreachable = sessions.Settings(
        endpoint_url="http://127.0.0.1:9",  # Discard port: nothing listens.
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout=1,
        read_timeout=1,
    )
    async with sessions.AwsClients(unreachable) as clients:
        with pytest.raises(errors.AwsError) as caught:
            await context(clients, BASE).call("ec2", "DescribeVpcs")
    assert caught.value.kind is errors.Kind.TRANSIENT
    assert caught.value.retryable


async def test_sdk_retries_are_off(clients: sessions.AwsClients) -> None:
    # linkplane owns retrying; a second SDK attempt would hide throttling from the limiter.
    ec2 = await clients.ec2(TENANT, REGION)
    # botocore's "max_attempts" counts retries; one request in total is "total_max_attempts".
    assert ec2.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert ec2.meta.config.max_pool_connections == clients.settings.max_pool_connections


async def test_a_throttled_request_is_sent_once_and_penalizes_the_limiter() -> None:
    # A stand-in for EC2 that always throttles: counting requests proves the SDK does not
    # retry behind the limiter's back.
    requests = 0
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        b"</Error></Errors><RequestID>r-1</RequestID></Response>"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        requests += 1
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    throttling = sessions.Settings(
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="testing",
        secret_access_key="testing",
    )
    limiter = throttlers.Limiter()
    try:
        async with sessions.AwsClients(throttling) as clients:
            ctx = calls.Context(clients, limiter, BASE, REGION)
            with pytest.raises(errors.AwsError) as caught:
                await ctx.call("ec2", "CreateVpcEndpoint", VpcId="vpc-1", ServiceName="x")
    finally:
        server.close()
        await server.wait_closed()
    assert requests == 1
    assert caught.value.code == "RequestLimitExceeded"
    assert errors.is_throttle(caught.value)
    assert caught.value.http_status == 503
    assert limiter.stats().penalties == 1
    # Drained: refilled by well under one token since, so the next create must wait.
    assert limiter.available(throttlers.EC2_ENDPOINT_MUTATION, BASE.account_id, REGION) < 1


async def test_global_services_get_one_client_per_account(clients: sessions.AwsClients) -> None:
    east = await clients.client("route53", TENANT, "us-east-1")
    assert await clients.client("route53", TENANT, "eu-west-1") is east
    assert await clients.route53(TENANT) is east


async def test_a_changed_role_is_assumed_afresh(clients: sessions.AwsClients) -> None:
    before = await clients.ec2(TENANT, REGION)
    rotated = sessions.AccountRef(
        TENANT.account_id, role_arn="arn:aws:iam::222222222222:role/linkplane-v2"
    )
    after = await clients.ec2(rotated, REGION)
    assert after is not before
    identity = await context(clients, rotated).call("sts", "GetCallerIdentity")
    assert "linkplane-v2" in identity["Arn"]


@hypothesis.given(
    moment=strategies.datetimes(
        min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)
    ),
    spelling=strategies.sampled_from(
        [
            "%Y-%m-%dT%H:%M:%S.%fZ",
            "%Y-%m-%dT%H:%M:%SZ",
            "%Y-%m-%dT%H:%M:%S+00:00",
            "%Y-%m-%dT%H:%M:%S",
            "%a, %d %b %Y %H:%M:%S GMT",
            "epoch",
        ]
    ),
)
def test_timestamps_read_as_botocore_reads_them(moment: datetime.datetime, spelling: str) -> None:
    # The fast path (fromisoformat) must give what botocore's dateutil path gives, and every
    # other spelling must still reach botocore's parser.
    if spelling == "epoch":
        text = str(int(moment.replace(tzinfo=datetime.UTC).timestamp()))
    else:
        text = moment.strftime(spelling)
    assert sessions.parse_timestamp(text) == botocore_utils.parse_timestamp(text)


async def test_clients_read_timestamps_with_the_fast_parser(
    clients: sessions.AwsClients,
) -> None:
    ec2 = await clients.ec2(BASE, REGION)
    parser = ec2._endpoint._response_parser_factory.create_parser("ec2")
    assert parser._timestamp_parser is sessions.parse_timestamp
    tenant_ec2 = await clients.ec2(TENANT, REGION)
    tenant_parser = tenant_ec2._endpoint._response_parser_factory.create_parser("ec2")
    assert tenant_parser._timestamp_parser is sessions.parse_timestamp


async def test_load_models_loads_what_the_clients_then_use(settings: sessions.Settings) -> None:
    # What a client's creation and its paginators load is already in the shared data loader's
    # cache: loaded at start-up, it is in the heap the server freezes (cli.py).
    async with sessions.AwsClients(settings) as clients:
        await clients.load_models()
        loader = clients._session.get_component("data_loader")
        loaded = set(loader._cache)
        assert any(key[:3] == ("load_service_model", "ec2", "service-2") for key in loaded)
        for service in sessions.SERVICES:
            client = await clients.client(service, BASE, REGION)
            client.can_paginate(next(iter(client.meta.method_to_api_mapping)))
        tenant_ec2 = await clients.ec2(TENANT, REGION)
        tenant_ec2.can_paginate("describe_vpc_endpoints")
        assert set(loader._cache) == loaded


async def test_every_session_of_the_process_shares_one_data_loader(
    settings: sessions.Settings,
) -> None:
    # botocore parses service models and endpoint rules once per loader: once per process, not
    # once per AwsClients (every control plane of a test process has its own) or per account.
    async with sessions.AwsClients(settings) as one, sessions.AwsClients(settings) as two:
        await one.ec2(TENANT, REGION)
        session_loaders = [
            one._session.get_component("data_loader"),
            two._session.get_component("data_loader"),
            one._account_sessions[TENANT].get_component("data_loader"),
        ]
    assert all(loader is session_loaders[0] for loader in session_loaders)


async def test_only_a_plaintext_endpoint_goes_without_certificate_verification(
    settings: sessions.Settings,
) -> None:
    # Plain HTTP (the simulator) has no certificate to verify, so no CA bundle is loaded for
    # it; an https endpoint, and AWS's own (no endpoint_url), are verified.
    assert settings.endpoint_url is not None and settings.endpoint_url.startswith("http://")
    for endpoint, verified in (
        (settings.endpoint_url, False),
        ("https://127.0.0.1:9", True),
        (None, True),
    ):
        configured = dataclasses.replace(settings, endpoint_url=endpoint)
        async with sessions.AwsClients(configured) as clients:
            ec2 = await clients.ec2(BASE, REGION)
            assert bool(ec2._endpoint.http_session._verify) is verified, endpoint
