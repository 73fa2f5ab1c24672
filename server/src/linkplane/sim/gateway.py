"""The WSGI front door: admin API, identity, faults, throttling, request log, then moto.

Every HTTP request reaches ``Gateway``. ``/_sim/...`` goes to the admin API; anything else is an
AWS call. The gateway works out which account signed it (assumed-role keys act as the role's
account), advances the world's delayed states, applies injected faults and AWS's throttling with
AWS's error formats, refuses actions the admin API denied to the signing role (the same answer
with or without ``DryRun``, as IAM is evaluated before anything else), serves the call through
moto under the world's lock (moto's backends are not thread-safe), and records the outcome.
"""

import dataclasses
import io
import json
import re
import time
import uuid
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import parse_qs

from linkplane.sim import world, wsgi
from linkplane.sim.wsgi import StartResponse, WsgiEnviron

DEFAULT_ACCOUNT_ID = "123456789012"

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")

# Where a Create action's response names the new object (for eventual consistency).
_CREATED_ID = {
    "CreateVpcEndpoint": re.compile(rb"<vpcEndpointId>([^<]+)<"),
    "CreateVpcEndpointServiceConfiguration": re.compile(rb"<serviceId>([^<]+)<"),
    "CreateLoadBalancer": re.compile(rb"<LoadBalancerArn>([^<]+)<"),
    "CreateTargetGroup": re.compile(rb"<TargetGroupArn>([^<]+)<"),
    "CreateVpc": re.compile(rb"<vpcId>([^<]+)<"),
    "CreateSubnet": re.compile(rb"<subnetId>([^<]+)<"),
    "CreateSecurityGroup": re.compile(rb"<groupId>([^<]+)<"),
}

# The NotFound error AWS answers for an id it does not know (yet), by id shape.
_NOT_FOUND = (
    (
        "vpce-svc-",
        "InvalidVpcEndpointServiceId.NotFound",
        "The VpcEndpointService Id '{}' does not exist",
    ),
    ("vpce-", "InvalidVpcEndpointId.NotFound", "The VpcEndpoint ID '{}' does not exist"),
    ("vpc-", "InvalidVpcID.NotFound", "The vpc ID '{}' does not exist"),
    ("subnet-", "InvalidSubnetID.NotFound", "The subnet ID '{}' does not exist"),
    ("sg-", "InvalidGroup.NotFound", "The security group '{}' does not exist"),
    (":targetgroup/", "TargetGroupNotFound", "One or more target groups not found"),
    (":loadbalancer/", "LoadBalancerNotFound", "One or more load balancers not found"),
)


class WsgiApp(Protocol):
    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]: ...


@dataclasses.dataclass(frozen=True)
class AwsCall:
    """What the gateway knows about one AWS request before serving it."""

    service: str
    """The SigV4 signing name: ``ec2``, ``elasticloadbalancing``, ``sts``, ``route53``."""
    action: str
    account: str
    region: str
    parameters: str
    """All parameter values, decoded and newline-joined (to spot ids it names)."""
    access_key: str = ""
    """The signing access key (an assumed role's key names the role)."""

    @property
    def iam_action(self) -> str:
        """``ec2:CreateVpcEndpoint``: the signing name is IAM's service prefix."""
        return f"{self.service}:{self.action}"


@dataclasses.dataclass
class _Served:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Gateway:
    """WSGI middleware in front of moto's dispatcher."""

    def __init__(self, sim: world.World, moto_app: WsgiApp, admin_app: WsgiApp) -> None:
        self._world = sim
        self._moto = moto_app
        self._admin = admin_app

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == "/_sim" or path.startswith("/_sim/"):
            return self._admin(environ, start_response)
        body = _read_body(environ)
        call = self._identify(environ, body)
        # Unsigned calls (moto's own /moto-api, health probes) are served as they are.
        served = self._handle(call, environ) if call.service else self._serve(environ)
        start_response(f"{served.status} {_reason(served.status)}", served.headers)
        return [served.body]

    def _handle(self, call: AwsCall, environ: WsgiEnviron) -> _Served:
        sim = self._world
        started = time.monotonic()
        sim.advance()
        decision = sim.faults.decide(call.action)
        if decision.latency_ms > 0:
            time.sleep(decision.latency_ms / 1000.0)
        if decision.error_code is not None:
            message = (
                "An internal error has occurred"
                if decision.status == 500
                else ("The service is unavailable. Please try again shortly.")
            )
            served = _error(call.service, decision.error_code, message, decision.status)
            outcome = "fault"
        elif not sim.throttler.admit(call.service, call.action, call.account, call.region):
            served = _throttled(call.service)
            outcome = "throttled"
        elif sim.denials and sim.denied(role_arn := self._role_of(call), call.iam_action):
            served = _unauthorized(call, role_arn)
            outcome = "error"
        elif call.action.startswith("Describe") and (
            hidden := sim.faults.hidden_among(call.parameters)
        ):
            served = _not_found(call.service, hidden)
            outcome = "fault"
        else:
            served = self._serve(environ)
            outcome = "ok" if served.status < 400 else "error"
            if outcome == "ok" and decision.consistency_delay_s > 0:
                self._hide_created(call, served, decision.consistency_delay_s)
        if decision.answer_delay_ms > 0:
            time.sleep(decision.answer_delay_ms / 1000.0)
        error_code = None
        if served.status >= 400:
            match = _ERROR_CODE.search(served.body)
            error_code = match.group(1).decode() if match else None
        sim.record(
            world.RequestRecord(
                time=world.wall_time(),
                service=call.service,
                action=call.action,
                account=call.account,
                region=call.region,
                outcome=outcome,
                status=served.status,
                error_code=error_code,
                duration_ms=round((time.monotonic() - started) * 1000.0, 3),
            )
        )
        return served

    def _serve(self, environ: WsgiEnviron) -> _Served:
        captured: dict[str, object] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
            captured["status"] = status
            captured["headers"] = headers

        with self._world.lock:
            result = self._moto(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        status = int(str(captured.get("status", "500")).split(" ", 1)[0])
        headers = [
            (name, value)
            for name, value in captured.get("headers", [])  # type: ignore[attr-defined]
            if name.lower() != "content-length"
        ]
        headers.append(("Content-Length", str(len(body))))
        return _Served(status, headers, body)

    def _role_of(self, call: AwsCall) -> str | None:
        if not call.access_key:
            return None
        return self._world.role_arn_for_access_key(call.access_key, call.account)

    def _hide_created(self, call: AwsCall, served: _Served, delay: float) -> None:
        pattern = _CREATED_ID.get(call.action)
        match = pattern.search(served.body) if pattern else None
        if match:
            self._world.faults.hide(match.group(1).decode(), delay)

    def _identify(self, environ: WsgiEnviron, body: bytes) -> AwsCall:
        authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
        credential = _CREDENTIAL.search(authorization)
        if credential is None:
            return AwsCall("", "", DEFAULT_ACCOUNT_ID, "", "")
        access_key, region, service = credential.groups()
        params = parse_qs(str(environ.get("QUERY_STRING", "")))
        if "x-www-form-urlencoded" in str(environ.get("CONTENT_TYPE", "")):
            for key, values in parse_qs(body.decode("utf-8", "replace")).items():
                params.setdefault(key, []).extend(values)
        action = params.get("Action", [""])[0]
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not action and target:
            # JSON protocols (Service Quotas) name the operation in X-Amz-Target.
            action = target.rsplit(".", 1)[-1]
        if not action:
            # REST protocols (Route53) name the operation by method and path.
            action = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
        # moto's own precedence: an explicit account header beats the access key.
        account = str(
            environ.get("HTTP_X_MOTO_ACCOUNT_ID", "")
        ) or self._world.account_for_access_key(access_key, DEFAULT_ACCOUNT_ID)
        parameters = "\n".join(value for values in params.values() for value in values)
        return AwsCall(service, action, account, region, parameters, access_key)


def _read_body(environ: WsgiEnviron) -> bytes:
    """Read the request body once and put it back, so both we and moto can parse it."""
    body = wsgi.read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _error(service: str, code: str, message: str, status: int) -> _Served:
    request_id = str(uuid.uuid4())
    if service == "ec2":
        # EC2's own error document (not the generic query-protocol ErrorResponse).
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:
        fault_type = "Sender" if status < 500 else "Receiver"
        text = (
            "<ErrorResponse><Error>"
            f"<Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    body = text.encode()
    headers = [
        ("Content-Type", "text/xml"),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id),
    ]
    return _Served(status, headers, body)


def _unauthorized(call: AwsCall, role_arn: str | None) -> _Served:
    """IAM's refusal, in each protocol's words (EC2 also for ``DryRun=true``)."""
    session = f"{role_arn}" if role_arn else call.account
    if call.service == "ec2":
        return _error(
            "ec2",
            "UnauthorizedOperation",
            f"You are not authorized to perform this operation. User: {session} is not "
            f"authorized to perform: {call.iam_action} (denied by linkplane-sim's deny list)",
            403,
        )
    message = (
        f"User: {session} is not authorized to perform: {call.iam_action} "
        "(denied by linkplane-sim's deny list)"
    )
    if call.service == "servicequotas":
        # A JSON protocol: the error is a JSON document with __type.
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        return _Served(400, headers, body)
    return _error(call.service, "AccessDenied", message, 403)


def _throttled(service: str) -> _Served:
    if service == "ec2":
        return _error(service, "RequestLimitExceeded", "Request limit exceeded.", 503)
    return _error(service, "ThrottlingException", "Rate exceeded", 400)


def _not_found(service: str, resource_id: str) -> _Served:
    for marker, code, message in _NOT_FOUND:
        if marker in resource_id:
            return _error(service, code, message.format(resource_id), 400)
    return _error(service, "InvalidParameterValue", f"'{resource_id}' does not exist", 400)


def _reason(status: int) -> str:
    return {
        200: "OK",
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        412: "Precondition Failed",
        500: "Internal Server Error",
    }.get(status, "Service Unavailable" if status == 503 else "Status")
