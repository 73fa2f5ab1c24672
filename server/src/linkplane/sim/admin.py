"""The admin HTTP API under ``/_sim/``: inspect the simulated AWS and steer it at runtime.

JSON in, JSON out. Used by humans (curl), by the server's dev tooling and by tests that run the
simulator out of process; in-process callers use the same operations through ``SimHandle``.
The reference is in docs/sim.md ("Admin API").
"""

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs

from linkplane.sim import config, ec2_endpoints, networks, world, wsgi
from linkplane.sim.wsgi import StartResponse, WsgiEnviron

Json = dict[str, object]


class AdminError(Exception):
    """A request the admin API refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def config_view(sim: world.World) -> Json:
    return {
        "time_scale": sim.clock.time_scale,
        "throttling": sim.throttler.enabled,
        "sim_time": sim.clock.now(),
        "delays": {
            "load_balancer_provisioning": sim.delays.load_balancer_provisioning,
            "endpoint_service_pending": sim.delays.endpoint_service_pending,
            "endpoint_pending": sim.delays.endpoint_pending,
            "endpoint_deleting": sim.delays.endpoint_deleting,
        },
    }


def apply_config(sim: world.World, changes: Mapping[str, object]) -> None:
    """Change ``time_scale`` and/or ``throttling`` (and delays) at runtime."""
    for key, value in changes.items():
        if key == "time_scale" and isinstance(value, int | float) and not isinstance(value, bool):
            sim.clock.set_time_scale(float(value))
        elif key == "throttling" and isinstance(value, bool):
            sim.throttler.enabled = value
        elif key == "delays" and isinstance(value, Mapping):
            for name, seconds in value.items():
                if not hasattr(sim.delays, str(name)) or not isinstance(seconds, int | float):
                    raise AdminError(400, f"invalid delay {name!r}: {seconds!r}")
                setattr(sim.delays, str(name), float(seconds))
        else:
            raise AdminError(400, f"invalid config entry {key!r}: {value!r}")


def faults_view(sim: world.World) -> Json:
    return {
        "seed": sim.faults.seed,
        "rules": {action: vars(rule) for action, rule in sim.faults.rules().items()},
    }


def apply_faults(sim: world.World, body: Mapping[str, object], *, replace: bool) -> None:
    rules = body.get("rules", {})
    seed = body.get("seed")
    if not isinstance(rules, Mapping) or not (seed is None or isinstance(seed, int)):
        raise AdminError(400, 'expected {"rules": {action: rule}, "seed": int|null}')
    try:
        parsed = config.parse_fault_rules(rules)
    except (ValueError, TypeError) as exc:
        raise AdminError(400, str(exc)) from exc
    sim.faults.set_rules(parsed, replace=replace, seed=seed)


def request_view(sim: world.World, query: Mapping[str, list[str]]) -> list[dict[str, object]]:
    entries = sim.request_log()
    for field in ("account", "action", "outcome", "service", "region"):
        if field in query:
            wanted = set(query[field])
            entries = [entry for entry in entries if entry[field] in wanted]
    if "limit" in query:
        entries = entries[-int(query["limit"][0]) :]
    return entries


_IAM_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]+/)?[\w+=,.@-]{1,64}$")
# Calls an assumed role's sessions make that IAM never refuses, or that its sessions never make.
_NOT_DENIABLE = {
    "sts:GetCallerIdentity": "AWS needs no permission for it",
    "sts:AssumeRole": "linkplane's own principal calls it, not the role's sessions",
}


def parse_denial(body: Json) -> tuple[str, frozenset[str]]:
    """``{"account", "role" (name or ARN), "actions": ["ec2:CreateVpcEndpoint"]}``."""
    account = _text(body, "account")
    if not re.fullmatch(r"\d{12}", account):
        raise AdminError(400, f"account {account!r}: must be a 12-digit AWS account id")
    role = _text(body, "role")
    if role.startswith("arn:"):
        match = _ROLE_ARN.match(role)
        if match is None or match.group(1) != account:
            raise AdminError(400, f"role {role!r}: must be a role ARN in account {account}")
        role_arn = role
    elif _ROLE_NAME.match(role):
        role_arn = f"arn:aws:iam::{account}:role/{role}"
    else:
        raise AdminError(400, f"role {role!r}: must be a role name or ARN")
    actions = body.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise AdminError(400, "actions: must be a list of IAM actions like ec2:CreateVpcEndpoint")
    for action in actions:
        if not _IAM_ACTION.match(action):
            raise AdminError(400, f"actions: {action!r} is not an IAM action (service:Action)")
        if action in _NOT_DENIABLE:
            raise AdminError(400, f"actions: {action} cannot be denied: {_NOT_DENIABLE[action]}")
    return role_arn, frozenset(actions)


def denials_view(sim: world.World) -> dict[str, list[str]]:
    with sim.lock:
        return {role: sorted(actions) for role, actions in sorted(sim.denials.items())}


class AdminApp:
    """WSGI app for ``/_sim/*`` routes."""

    def __init__(self, sim: world.World) -> None:
        self._world = sim

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", "")).removeprefix("/_sim").strip("/")
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        try:
            status, payload = self._route(method, path, query, _json_body(environ))
        except AdminError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (ValueError, TypeError, KeyError) as exc:
            status, payload = 400, {"error": str(exc)}
        body = json.dumps(payload, default=str).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _route(
        self, method: str, path: str, query: Mapping[str, list[str]], body: Json
    ) -> tuple[int, object]:
        sim = self._world
        route = (method, path)
        if route == ("GET", "health"):
            return 200, {"ok": True}
        if route == ("GET", "objects"):
            account = query.get("account", [None])[0]
            region = query.get("region", [None])[0]
            return 200, sim.objects(account=account or None, region=region or None)
        if route == ("GET", "requests"):
            return 200, request_view(sim, query)
        if route == ("GET", "throttles"):
            return 200, sim.throttler.throttle_counts()
        if path == "faults":
            if method in ("PUT", "POST"):
                apply_faults(sim, body, replace=method == "PUT")
            elif method != "GET":
                raise AdminError(405, f"{method} not allowed on /_sim/faults")
            return 200, faults_view(sim)
        if path == "config":
            if method in ("PUT", "POST"):
                apply_config(sim, body)
            elif method != "GET":
                raise AdminError(405, f"{method} not allowed on /_sim/config")
            return 200, config_view(sim)
        if path == "quotas":
            if method in ("PUT", "POST"):
                sim.set_quota(
                    _text(body, "account_id"),
                    _optional_text(body, "region"),
                    _optional_text(body, "service_code") or "vpc",
                    _optional_text(body, "quota_code") or "L-29B6F2EB",
                    _number(body, "value"),
                )
            elif method != "GET":
                raise AdminError(405, f"{method} not allowed on /_sim/quotas")
            return 200, sim.quotas_view()
        if route == ("POST", "endpoint-state"):
            endpoint_id = _text(body, "endpoint_id")
            try:
                ec2_endpoints.force_endpoint_state(
                    sim,
                    endpoint_id,
                    _text(body, "state"),
                    _optional_text(body, "code"),
                    _optional_text(body, "message"),
                )
            except KeyError as exc:
                raise AdminError(404, f"no endpoint {endpoint_id}") from exc
            return 200, {"ok": True}
        if path == "endpoint-outcomes":
            if method == "POST":
                sim.arm_endpoint_outcome(
                    world.EndpointOutcome(
                        state=_text(body, "state"),
                        count=int(_number(body, "count", 1)),
                        account=_optional_text(body, "account"),
                        service_name=_optional_text(body, "service_name"),
                        code=_optional_text(body, "code"),
                        message=_optional_text(body, "message"),
                    )
                )
            elif method == "DELETE":
                with sim.lock:
                    sim.endpoint_outcomes.clear()
            elif method != "GET":
                raise AdminError(405, f"{method} not allowed on /_sim/endpoint-outcomes")
            with sim.lock:
                return 200, [dataclasses.asdict(o) for o in sim.endpoint_outcomes]
        if path == "deny":
            if method == "PUT":
                role_arn, actions = parse_denial(body)
                sim.deny(role_arn, actions)
            elif method == "DELETE":
                with sim.lock:
                    sim.denials.clear()
            elif method != "GET":
                raise AdminError(405, f"{method} not allowed on /_sim/deny")
            return 200, denials_view(sim)
        if route == ("POST", "reset"):
            sim.reset()
            return 200, {"ok": True}
        if route == ("POST", "seed-network"):
            return 200, networks.seed_network(
                sim,
                account_id=str(body.get("account_id", "111111111111")),
                region=str(body.get("region", "us-east-1")),
                cidr=str(body.get("cidr", "10.0.0.0/16")),
                azs=int(str(body.get("azs", 2))),
                options=networks.NetworkOptions(
                    dual_stack=_flag(body, "dual_stack", True),
                    ipv6_only_subnets=_flag(body, "ipv6_only_subnets", False),
                    dns_hostnames=_flag(body, "dns_hostnames", True),
                ),
            )
        raise AdminError(404, f"no admin route {method} /_sim/{path}")


def _text(body: Json, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise AdminError(400, f"{key} is required (a non-empty string)")
    return value


def _optional_text(body: Json, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AdminError(400, f"{key} must be a string, got {value!r}")
    return value


def _number(body: Json, key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise AdminError(400, f"{key} must be a number, got {value!r}")
    return float(value)


def _flag(body: Json, key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise AdminError(400, f"{key} must be true or false, got {value!r}")
    return value


def _json_body(environ: WsgiEnviron) -> Json:
    raw = wsgi.read_body(environ)
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise AdminError(400, "the request body must be a JSON object")
    return data
