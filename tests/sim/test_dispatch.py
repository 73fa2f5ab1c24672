"""moto's dispatch, computed once per host and per response class (sim/dispatch.py), with
moto's own answers."""

from typing import Any

import pytest
from moto.ec2.responses import EC2Response
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from linkplane.sim import dispatch


def test_each_host_is_resolved_once_with_moto_s_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = ["ec2.us-east-1.amazonaws.com", "elasticloadbalancing.eu-west-1.amazonaws.com"]
    expected = [
        DomainDispatcherApplication(create_backend_app).get_backend_for_host(h) for h in hosts
    ]
    asked: list[str | None] = []
    original = DomainDispatcherApplication.get_backend_for_host

    def counting(self: Any, host: str | None) -> Any:
        asked.append(host)
        return original(self, host)

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counting)
    dispatcher = dispatch.Dispatcher(create_backend_app)
    for _ in range(3):
        assert [dispatcher.get_backend_for_host(h) for h in hosts] == expected
    assert asked == hosts
    assert expected == ["ec2", "elb"]  # moto serves ELBv2 from the elb backend's app


def test_action_names_are_the_class_s_methods() -> None:
    names = dispatch._method_names(EC2Response)
    assert "describe_vpc_endpoints" in names
    assert "not_an_action" not in names
    assert dispatch._method_names(EC2Response) is names


async def test_both_services_answer_over_http_from_the_remembered_dispatch(aws) -> None:
    account = await aws.account(aws.PROVIDER)
    for _ in range(2):
        assert (await account.ec2.describe_vpcs())["Vpcs"]
        assert (await account.elbv2.describe_load_balancers())["LoadBalancers"] == []
