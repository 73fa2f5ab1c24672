"""Dev mode's first run: the pre-registered accounts and the printed walkthrough.

`linkplane-server dev` seeds the embedded simulator with a provider and a consumer account,
each with a VPC and subnets in two AZs, registers both as linkplane Accounts (through the real
API, like any client would), and prints the exact `lpctl` commands of the walkthrough. The
network ids ride along as `dev-*` labels, which `lpctl demo` reads.
"""

from __future__ import annotations

from typing import Any

import grpc

from linkplane.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc

PROJECT = "default"
REGION = "us-east-1"
PROVIDER = "111111111111"
CONSUMER = "222222222222"
ACCOUNTS = {PROVIDER: "10.1.0.0/16", CONSUMER: "10.2.0.0/16"}


def _labels(network: dict[str, Any], role: str) -> dict[str, str]:
    return {
        "role": role,
        "dev-vpc-id": str(network["vpc_id"]),
        "dev-subnet-ids": "_".join(str(s) for s in network["subnet_ids"]),
        "dev-security-group-id": str(network["security_group_id"]),
    }


async def register_accounts(address: str, networks: dict[str, dict[str, Any]]) -> None:
    """Register (or refresh) the dev accounts; the simulator's networks are new each run."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        for account_id, network in networks.items():
            role = "provider" if account_id == PROVIDER else "consumer"
            account = account_pb2.Account(
                display_name=f"dev {role}",
                role_arn=f"arn:aws:iam::{account_id}:role/linkplane",
                allowed_regions=[REGION],
                labels=_labels(network, role),
            )
            name = f"projects/{PROJECT}/accounts/{account_id}"
            try:
                await stub.RegisterAccount(
                    account_service_pb2.RegisterAccountRequest(
                        parent=f"projects/{PROJECT}", account_id=account_id, account=account
                    )
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                account.name = name
                await stub.UpdateAccount(account_service_pb2.UpdateAccountRequest(account=account))


def walkthrough(
    address: str, networks: dict[str, dict[str, Any]], simulator: Any, *, auth_enabled: bool = False
) -> str:
    lines = [
        "",
        f"linkplane is serving on {address} (dev mode).",
    ]
    if simulator is not None:
        provider, consumer = networks[PROVIDER], networks[CONSUMER]
        subnets = " ".join(f"--subnet {s}" for s in provider["subnet_ids"])
        consumer_subnets = " ".join(f"--subnet {s}" for s in consumer["subnet_ids"])
        lines += [
            f"AWS simulator: {simulator.endpoint_url} (admin API {simulator.admin_url})",
            f"Accounts: provider {PROVIDER} (VPC {provider['vpc_id']}), "
            f"consumer {CONSUMER} (VPC {consumer['vpc_id']}), project {PROJECT!r}.",
            "",
            "Walkthrough (in another terminal):",
            f"  export LINKPLANE_ADDRESS={address}",
            "  lpctl demo                      # everything below, narrated, in one command",
            "",
            f"  lpctl services publish payments --account {PROVIDER} --region {REGION} "
            f"{subnets} --listener 443/tcp --target 10.1.0.10 --allow {CONSUMER} --wait",
            f"  lpctl connections create orders --account {CONSUMER} --region {REGION} "
            f"--service payments --vpc {consumer['vpc_id']} {consumer_subnets} --wait",
            "  lpctl connections get orders                 # PENDING_ACCEPTANCE: not ready yet",
            "  lpctl services connections list payments     # the provider's inventory",
            "  lpctl services connections accept payments ENDPOINT_ID --reason 'ticket 42' --wait",
            "  lpctl connections get orders                 # AVAILABLE, with DNS names and IPs",
            "  lpctl connections delete orders --wait",
            "  lpctl services delete payments --wait",
        ]
    else:
        lines += [f"  export LINKPLANE_ADDRESS={address}", "  lpctl accounts list"]
    notice = AUTH_ON_NOTICE if auth_enabled else AUTH_OFF_NOTICE
    lines += ["", *notice, "", "Stop with Ctrl-C.", ""]
    return "\n".join(lines)


AUTH_OFF_NOTICE = (
    "Authentication is off: every caller is the local administrator (docs/security.md).",
    "To turn it on, give each user a token and name the administrators, e.g.:",
    '  export LINKPLANE_AUTH_TOKENS=\'{"<random token>": "alice"}\'',
    "  export LINKPLANE_ADMINS='[\"alice\"]'",
    "then grant others roles per project: lpctl iam add-binding (google.iam.v1.IAMPolicy).",
)
AUTH_ON_NOTICE = (
    "Authentication is on: callers need credentials; LINKPLANE_ADMINS administer every project.",
    "The dev accounts were not registered (that needs an administrator's credentials).",
)
