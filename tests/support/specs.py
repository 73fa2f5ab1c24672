"""Service and Connection specs for tests that reconcile against the simulator's seeded networks
(`simulator.seed_networks`)."""

from __future__ import annotations

from typing import Any

from linkplane.v1 import connection_pb2, service_pb2
from tests.support.simulator import CONSUMER, PROVIDER, REGION


def managed_service(
    project: str,
    networks: dict[str, Any],
    *,
    allowed: tuple[str, ...] = (CONSUMER,),
    **policy: Any,
) -> service_pb2.Service:
    """A Service spec with a managed NLB in the provider's seeded network."""
    return service_pb2.Service(
        provider_account=f"projects/{project}/accounts/{PROVIDER}",
        region=REGION,
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=networks[PROVIDER]["subnet_ids"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.1.0.10")],
            )
        ),
        allowed_principals=list(allowed),
        acceptance_policy=service_pb2.AcceptancePolicy(**policy),
    )


def connection_spec(
    project: str, network: dict[str, Any], service: str, account: str = CONSUMER
) -> connection_pb2.Connection:
    """A Connection spec from `account`'s `network` (vpc_id, subnet_ids) to `service`."""
    return connection_pb2.Connection(
        service=service,
        consumer_account=f"projects/{project}/accounts/{account}",
        region=REGION,
        vpc_id=network["vpc_id"],
        subnet_ids=network["subnet_ids"],
    )
