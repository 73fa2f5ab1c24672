"""Starting and steering the simulator in-process: ``start()`` → ``SimHandle``.

The server's dev mode, its tests, the benchmarks and the CLI all start the simulator here. It
installs the moto seams, builds moto's WSGI dispatcher behind the ``gateway`` and serves it from
a threaded werkzeug server on a background thread (moto's ThreadedMotoServer does the same).
moto's state is process-global, hence one running simulator per process.
"""

import dataclasses
import os
import pathlib
import threading

from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from linkplane.sim import (
    addressing,
    admin,
    dispatch,
    ec2_actions,
    ec2_endpoints,
    elbv2_actions,
    gateway,
    networks,
    quotas,
    tag_index,
    world,
    zones,
)
from linkplane.sim import config as sim_config

_running_lock = threading.Lock()
_running: "SimHandle | None" = None


@dataclasses.dataclass
class SimHandle:
    """A running simulator: its URLs and in-process equivalents of the admin API."""

    endpoint_url: str
    """Give this to aiobotocore as ``endpoint_url`` for ec2, elbv2, sts and route53."""
    admin_url: str
    """Base URL of the admin HTTP API (``{endpoint_url}/_sim``)."""
    world: world.World
    _server: BaseWSGIServer
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and uninstall the moto seams; safe to call twice."""
        global _running  # noqa: PLW0603 - one simulator per process, like moto's backends
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        with _running_lock:
            if _running is self:
                _running = None
                ec2_actions.uninstall()
                elbv2_actions.uninstall()
                zones.uninstall()
                quotas.uninstall()
                addressing.uninstall()
                tag_index.uninstall()
                dispatch.uninstall()
                world.uninstall(self.world)

    def reset(self) -> None:
        """Wipe all AWS state (every account), buckets, request log and faults."""
        self.world.reset()

    def objects(self, account: str | None = None, region: str | None = None) -> dict[str, object]:
        return self.world.objects(account=account, region=region)

    def requests(self) -> list[dict[str, object]]:
        return self.world.request_log()

    def throttle_counts(self) -> dict[str, dict[str, int]]:
        return self.world.throttler.throttle_counts()

    def set_faults(
        self,
        rules: dict[str, sim_config.FaultRule | dict[str, float]],
        *,
        seed: int | None = None,
        replace: bool = True,
    ) -> None:
        """Set fault rules by action (``*`` for all); ``replace=False`` merges."""
        parsed = {
            action: rule
            if isinstance(rule, sim_config.FaultRule)
            else sim_config.FaultRule.from_mapping(rule)
            for action, rule in rules.items()
        }
        self.world.faults.set_rules(parsed, replace=replace, seed=seed)

    def set_quota(
        self,
        account_id: str,
        value: float,
        *,
        region: str | None = None,
        service_code: str = "vpc",
        quota_code: str = "L-29B6F2EB",
    ) -> None:
        """Set ``account_id``'s applied Service Quotas value (``region`` None: every Region).
        The default quota is the per-VPC interface endpoint limit CreateVpcEndpoint enforces."""
        self.world.set_quota(account_id, region, service_code, quota_code, value)

    def set_endpoint_state(
        self,
        endpoint_id: str,
        state: str,
        *,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Force an endpoint into ``failed``, ``expired`` or ``partial`` (with LastError and,
        for failed, FailureReason from ``code``/``message``)."""
        ec2_endpoints.force_endpoint_state(self.world, endpoint_id, state, code, message)

    def arm_endpoint_outcome(
        self,
        state: str,
        *,
        count: int = 1,
        account: str | None = None,
        service_name: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next ``count`` new endpoints (of ``account`` to ``service_name``, when
        given) end in ``state`` instead of going on to available."""
        self.world.arm_endpoint_outcome(
            world.EndpointOutcome(state, count, account, service_name, code, message)
        )

    def deny(self, account_id: str, role: str, actions: list[str]) -> None:
        """Refuse ``actions`` (IAM names, ``ec2:CreateVpcEndpoint``) to the sessions of
        ``role`` (a name in ``account_id``, or its ARN), with or without DryRun; replaces that
        role's list, and an empty list removes it. Like ``PUT /_sim/deny``."""
        role_arn, denied = admin.parse_denial(
            {"account": account_id, "role": role, "actions": list(actions)}
        )
        self.world.deny(role_arn, denied)

    def set_time_scale(self, time_scale: float) -> None:
        self.world.clock.set_time_scale(time_scale)

    def set_throttling(self, enabled: bool) -> None:
        self.world.throttler.enabled = enabled


def start(
    host: str = "127.0.0.1",
    port: int = 0,
    time_scale: float | None = None,
    config: sim_config.SimConfig | pathlib.Path | str | None = None,
    throttling: bool | None = None,
) -> SimHandle:
    """Serve the simulator on ``host:port`` (0 = ephemeral) from a background thread.

    ``time_scale`` and ``throttling`` override the config's (defaults: 1.0 and on). Returns once
    the socket is listening. Raises RuntimeError if one is already running in this process.
    """
    global _running  # noqa: PLW0603
    cfg = _load(config)
    if time_scale is not None:
        cfg.time_scale = time_scale
    if throttling is not None:
        cfg.throttling = throttling
    # moto loads ~1,300 AMIs into every new (account, Region) EC2 backend: 0.2 s each time, for
    # nothing PrivateLink needs. An explicit setting by the user still wins.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with _running_lock:
        if _running is not None:
            raise RuntimeError(
                f"a simulator already runs in this process at {_running.endpoint_url}; moto's "
                "state is process-global, so reuse it (handle.reset()) or stop it first"
            )
        sim = world.World(cfg)
        world.install(sim)
        ec2_actions.install()
        elbv2_actions.install()
        zones.install()
        quotas.install()
        addressing.install()
        tag_index.install()
        dispatch.install()
        app = gateway.Gateway(sim, dispatch.Dispatcher(create_backend_app), admin.AdminApp(sim))
        server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, name="linkplane-sim", daemon=True)
        thread.start()
        bound_host, bound_port = str(server.host), server.port
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        endpoint_url = f"http://{url_host}:{bound_port}"
        handle = SimHandle(endpoint_url, f"{endpoint_url}/_sim", sim, server, thread)
        _running = handle
        return handle


def seed_network(
    handle: SimHandle,
    account_id: str = "111111111111",
    region: str = "us-east-1",
    cidr: str = "10.0.0.0/16",
    azs: int = 2,
    *,
    dual_stack: bool = True,
    ipv6_only_subnets: bool = False,
    dns_hostnames: bool = True,
) -> dict[str, object]:
    """Create a (dual-stack) VPC, one subnet and route table per AZ and a security group in
    ``account_id``; see ``networks.seed_network`` for the returned keys and
    ``networks.NetworkOptions`` for the options."""
    options = networks.NetworkOptions(
        dual_stack=dual_stack, ipv6_only_subnets=ipv6_only_subnets, dns_hostnames=dns_hostnames
    )
    return networks.seed_network(handle.world, account_id, region, cidr, azs, options)


def _load(source: sim_config.SimConfig | pathlib.Path | str | None) -> sim_config.SimConfig:
    if source is None:
        return sim_config.SimConfig()
    if isinstance(source, sim_config.SimConfig):
        return dataclasses.replace(source)
    return sim_config.SimConfig.load(pathlib.Path(source))


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without a log line per request (tests make thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None
