"""Stubs and builders for API tests (error details come from `tests.support.api`)."""

from __future__ import annotations

import random
import uuid
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    connection_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2_grpc,
    service_pb2,
)
from tests.support.api import status_details as details

__all__ = [
    "CONSUMER_ID",
    "PROVIDER_ID",
    "account_name",
    "connection_to",
    "details",
    "hex_id",
    "managed_service",
    "register_accounts",
]


@pytest.fixture
def accounts(channel: grpc.aio.Channel) -> account_service_pb2_grpc.AccountServiceStub:
    return account_service_pb2_grpc.AccountServiceStub(channel)


@pytest.fixture
def provider(channel: grpc.aio.Channel) -> provider_service_pb2_grpc.ProviderServiceStub:
    return provider_service_pb2_grpc.ProviderServiceStub(channel)


@pytest.fixture
def consumer(channel: grpc.aio.Channel) -> consumer_service_pb2_grpc.ConsumerServiceStub:
    return consumer_service_pb2_grpc.ConsumerServiceStub(channel)


@pytest.fixture
def operations(channel: grpc.aio.Channel) -> operations_pb2_grpc.OperationsStub:
    return operations_pb2_grpc.OperationsStub(channel)


PROVIDER_ID = "111111111111"
CONSUMER_ID = "222222222222"


def account_name(project: str, account_id: str) -> str:
    return f"projects/{project}/accounts/{account_id}"


def hex_id(prefix: str) -> str:
    return f"{prefix}-{random.getrandbits(68):017x}"


def managed_service(project: str, **overrides: Any) -> service_pb2.Service:
    service = service_pb2.Service(
        provider_account=account_name(project, PROVIDER_ID),
        region="us-east-1",
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=[hex_id("subnet"), hex_id("subnet")],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.0.1.10")],
            )
        ),
        allowed_principals=[CONSUMER_ID],
        labels={"team": "payments"},
    )
    for key, value in overrides.items():
        setattr(service, key, value)
    return service


def connection_to(project: str, service: str, **overrides: Any) -> connection_pb2.Connection:
    connection = connection_pb2.Connection(
        service=service,
        consumer_account=account_name(project, CONSUMER_ID),
        region="us-east-1",
        vpc_id=hex_id("vpc"),
        subnet_ids=[hex_id("subnet")],
        labels={"team": "checkout"},
    )
    for key, value in overrides.items():
        setattr(connection, key, value)
    return connection


async def register_accounts(
    stub: account_service_pb2_grpc.AccountServiceStub, project: str
) -> None:
    for account_id in (PROVIDER_ID, CONSUMER_ID):
        await stub.RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=f"projects/{project}",
                account_id=account_id,
                account=account_pb2.Account(display_name=f"acct {account_id}"),
                request_id=str(uuid.uuid4()),
            )
        )
