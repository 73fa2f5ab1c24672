"""What the simulator costs per read: DescribeVpcEndpoints with N endpoints in one account.

Not a test. Starts the simulator in this process (throttling off), creates N interface
endpoints to an AWS service (SQS) in one account, tagged ``linkplane:uid`` (40 per VPC, under
the per-VPC quota), and times, through boto3 against the simulator's URL, the reads linkplane's
reconciler makes: all endpoints by ``tag-key`` (its snapshot), one by id, one VPC's by
``vpc-id`` (+ ``vpc-endpoint-type``), one by ``tag:linkplane:uid``, and DescribeNetworkInterfaces
of one endpoint's ENIs. Prints the median and the best of ``--repeat`` calls for each.

    uv run --frozen python bench/sim_describe.py --endpoints 200 1000
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3

from linkplane.sim import server as sim_server

ACCOUNT = "222222222222"
REGION = "us-east-1"
PER_VPC = 40
SERVICE = f"com.amazonaws.{REGION}.sqs"


def _client(url: str) -> Any:
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times), min(times)


def measure(count: int, repeat: int) -> None:
    handle = sim_server.start(throttling=False)
    handle.reset()  # moto's backends outlive a stopped simulator
    try:
        ec2 = _client(handle.endpoint_url)
        # The account header makes moto act as ACCOUNT without IAM set-up.
        ec2.meta.events.register(
            "before-sign.ec2.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", ACCOUNT),
        )
        networks = [
            sim_server.seed_network(handle, ACCOUNT, REGION, f"10.{n}.0.0/16")
            for n in range(-(-count // PER_VPC))
        ]
        uids, ids = [], []
        started = time.perf_counter()
        for index in range(count):
            network = networks[index // PER_VPC]
            uid = str(uuid.uuid4())
            created = ec2.create_vpc_endpoint(
                VpcEndpointType="Interface",
                VpcId=network["vpc_id"],
                ServiceName=SERVICE,
                SubnetIds=network["subnet_ids"],
                TagSpecifications=[
                    {
                        "ResourceType": "vpc-endpoint",
                        "Tags": [{"Key": "linkplane:uid", "Value": uid}],
                    }
                ],
            )
            uids.append(uid)
            ids.append(created["VpcEndpoint"]["VpcEndpointId"])
        create_ms = (time.perf_counter() - started) * 1000.0 / count
        last = -1
        eni_ids = ec2.describe_vpc_endpoints(VpcEndpointIds=[ids[last]])["VpcEndpoints"][0][
            "NetworkInterfaceIds"
        ]

        def by_tag_key() -> None:
            pages = ec2.get_paginator("describe_vpc_endpoints").paginate(
                Filters=[{"Name": "tag-key", "Values": ["linkplane:uid"]}]
            )
            found = sum(len(p["VpcEndpoints"]) for p in pages)
            assert found == count, found

        cases: dict[str, Callable[[], object]] = {
            "tag-key (all)": by_tag_key,
            "by id": lambda: ec2.describe_vpc_endpoints(VpcEndpointIds=[ids[last]]),
            "vpc-id + type": lambda: ec2.describe_vpc_endpoints(
                Filters=[
                    {"Name": "vpc-id", "Values": [networks[-1]["vpc_id"]]},
                    {"Name": "vpc-endpoint-type", "Values": ["Interface"]},
                ],
                MaxResults=1000,
            ),
            "tag:linkplane:uid": lambda: ec2.describe_vpc_endpoints(
                Filters=[{"Name": "tag:linkplane:uid", "Values": [uids[last]]}]
            ),
            "ENIs of one": lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=eni_ids),
        }
        print(f"N={count}: CreateVpcEndpoint {create_ms:.1f} ms each")
        for name, call in cases.items():
            median, best = _timed(call, repeat)
            print(f"  {name:18} median {median:8.1f} ms   best {best:8.1f} ms")
    finally:
        handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for count in args.endpoints:
        measure(count, args.repeat)


if __name__ == "__main__":
    main()
