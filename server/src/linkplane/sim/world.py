"""The simulator's world: the cross-account registry moto does not have, and its one lock.

moto keeps one backend per (account, Region), which is right for ownership but leaves no place
for what spans accounts: a consumer's endpoint (in the consumer's backend) is a connection on the
provider's service (in the provider's backend). The world indexes both, advances every delayed
state lazily on each request (so a changed time scale takes effect at once and nothing needs a
timer), remembers ClientTokens, and records each request for inspection.

There is one world per process, because moto's backends are process-global too: ``server``
installs it and the moto seams (``ec2_actions``, ``elbv2_actions``) reach it via ``current()``.
"""

import collections
import dataclasses
import threading
import time

from moto.ec2.models import ec2_backends
from moto.elbv2.models import elbv2_backends
from moto.iam.models import iam_backends
from moto.moto_api._internal.models import moto_api_backend

from linkplane.sim import clocks, config, faults, models, throttling


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One AWS call as the gateway saw it."""

    time: float
    service: str
    action: str
    account: str
    region: str
    outcome: str
    """``ok``, ``throttled``, ``fault`` (injected) or ``error`` (AWS error from the model)."""
    status: int
    error_code: str | None
    duration_ms: float


@dataclasses.dataclass
class EndpointOutcome:
    """An armed fault: the next ``count`` matching new endpoints end in ``state``, not available.

    AWS gives no way to cause ``failed``, ``expired`` or ``partial``, yet linkplane must handle
    them; tests arm one through the admin API (``POST /_sim/endpoint-outcomes``)."""

    state: str
    count: int = 1
    account: str | None = None
    service_name: str | None = None
    code: str | None = None
    message: str | None = None

    def matches(self, account: str, service_name: str) -> bool:
        return (self.account is None or self.account == account) and (
            self.service_name is None or self.service_name == service_name
        )


@dataclasses.dataclass(frozen=True)
class ClientTokenRecord:
    fingerprint: str
    resource_id: str


class World:
    """All simulator state beyond moto's backends; guarded by ``lock`` (re-entrant)."""

    def __init__(self, cfg: config.SimConfig) -> None:
        self.lock = threading.RLock()
        self.clock = clocks.SimClock(cfg.time_scale)
        self.delays = cfg.delays
        self.throttler = throttling.Throttler(self.clock, enabled=cfg.throttling)
        self.faults = faults.FaultInjector(self.clock, seed=cfg.seed)
        self.faults.set_rules(cfg.faults)
        self.services: dict[str, models.SimServiceConfiguration] = {}
        self.endpoints: dict[str, models.SimVpcEndpoint] = {}
        self.load_balancers: dict[str, models.SimLoadBalancer] = {}
        self.client_tokens: dict[tuple[str, str, str, str], ClientTokenRecord] = {}
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=50_000)
        # The request log has its own lock: records are appended outside ``lock`` (after moto
        # answered), and iterating a deque while another thread appends raises RuntimeError.
        self._requests_lock = threading.Lock()
        # Service Quotas applied values: (account, region or "*", service code, quota code).
        self.quotas: dict[tuple[str, str, str, str], float] = {}
        self.endpoint_outcomes: list[EndpointOutcome] = []
        # Next IPv6 host number handed out per subnet (ENIs of dual-stack/IPv6 endpoints).
        self.ipv6_hosts: dict[str, int] = {}
        self._access_key_accounts: dict[str, str] = {}
        # IAM actions ("ec2:CreateVpcEndpoint") each role ARN may not call (admin API).
        self.denials: dict[str, frozenset[str]] = {}

    # Time ------------------------------------------------------------------------------------

    def due_in(self, sim_seconds: float) -> float:
        """The simulated instant ``sim_seconds`` from now."""
        return self.clock.now() + sim_seconds

    def advance(self) -> None:
        """Apply every transition whose time has come. Called before each request is served."""
        with self.lock:
            now = self.clock.now()
            for lb in self.load_balancers.values():
                if lb.state == "provisioning" and lb.ready_at <= now:
                    lb.state = "active"
            for service in self.services.values():
                if (
                    service.service_state == "Pending"
                    and service.ready_at <= now
                    and all(self._lb_active(arn) for arn in service.network_load_balancer_arns)
                ):
                    service.service_state = "Available"
            for endpoint in self.endpoints.values():
                if endpoint.transition is not None and endpoint.transition[1] <= now:
                    next_state = endpoint.transition[0]
                    endpoint.move_to(next_state)
                    if next_state == models.DELETED:
                        self.release(endpoint)

    def _lb_active(self, arn: str) -> bool:
        lb = self.load_balancers.get(arn)
        # Load balancers created before the sim took over (none in practice) count as active.
        return lb is None or lb.state == "active"

    def release(self, endpoint: models.SimVpcEndpoint) -> None:
        """Free a deleted endpoint's ENIs and IPs and drop it from its owner's backend."""
        backend = endpoint.ec2_backend
        for eni_id in endpoint.network_interface_ids:
            eni = backend.enis.pop(eni_id, None)
            if eni is not None and eni.private_ip_address:
                eni.subnet.del_subnet_ip(eni.private_ip_address)
        backend.vpc_end_points.pop(endpoint.id, None)

    # Identity --------------------------------------------------------------------------------

    def account_for_access_key(self, access_key: str, default: str) -> str:
        """The account a request signed with ``access_key`` acts as (assumed roles included)."""
        cached = self._access_key_accounts.get(access_key)
        if cached is not None:
            return cached
        for account_id, account in list(iam_backends.items()):
            if access_key in account["aws"].access_keys:
                self._access_key_accounts[access_key] = account_id
                return str(account_id)
        # Unknown keys are not cached: STS may hand this key out later.
        return default

    def role_arn_for_access_key(self, access_key: str, account: str) -> str | None:
        key = iam_backends[account]["aws"].access_keys.get(access_key)
        role_arn = getattr(key, "role_arn", None)
        return str(role_arn) if role_arn else None

    def deny(self, role_arn: str, actions: frozenset[str]) -> None:
        """Replace the IAM actions ``role_arn``'s sessions are refused; empty removes it."""
        with self.lock:
            if actions:
                self.denials[role_arn] = actions
            else:
                self.denials.pop(role_arn, None)

    def denied(self, role_arn: str | None, iam_action: str) -> bool:
        """Whether a session of ``role_arn`` (None: not an assumed role) may not call it."""
        if role_arn is None:
            return False
        with self.lock:
            return iam_action in self.denials.get(role_arn, frozenset())

    # Registry queries ------------------------------------------------------------------------

    def service_by_name(self, name: str) -> models.SimServiceConfiguration | None:
        for service in self.services.values():
            if service.service_name == name:
                return service
        return None

    def connections_of(self, service_id: str) -> list[models.SimVpcEndpoint]:
        return [ep for ep in self.endpoints.values() if ep.service and ep.service.id == service_id]

    def remember_token(
        self, key: tuple[str, str, str, str], fingerprint: str, resource_id: str
    ) -> None:
        self.client_tokens[key] = ClientTokenRecord(fingerprint, resource_id)

    # Requests --------------------------------------------------------------------------------

    def record(self, entry: RequestRecord) -> None:
        with self._requests_lock:
            self.requests.append(entry)

    # Service Quotas and armed endpoint outcomes ------------------------------------------------

    def quota(self, account: str, region: str, service_code: str, quota_code: str) -> float | None:
        """The applied value set for ``account`` (in ``region`` or every Region), if any."""
        for key in (
            (account, region, service_code, quota_code),
            (account, "*", service_code, quota_code),
        ):
            if key in self.quotas:
                return self.quotas[key]
        return None

    def set_quota(
        self, account: str, region: str | None, service_code: str, quota_code: str, value: float
    ) -> None:
        if value < 0:
            raise ValueError(f"a quota value cannot be negative, got {value}")
        with self.lock:
            self.quotas[(account, region or "*", service_code, quota_code)] = float(value)

    def quotas_view(self) -> list[dict[str, object]]:
        with self.lock:
            return [
                {
                    "account_id": account,
                    "region": None if region == "*" else region,
                    "service_code": service_code,
                    "quota_code": quota_code,
                    "value": value,
                }
                for (account, region, service_code, quota_code), value in self.quotas.items()
            ]

    def arm_endpoint_outcome(self, outcome: EndpointOutcome) -> None:
        if outcome.state not in models.INJECTABLE_STATES:
            raise ValueError(
                f"state must be one of {sorted(models.INJECTABLE_STATES)}, got {outcome.state!r}"
            )
        if outcome.count < 1:
            raise ValueError(f"count must be at least 1, got {outcome.count}")
        with self.lock:
            self.endpoint_outcomes.append(outcome)

    def take_endpoint_outcome(self, account: str, service_name: str) -> EndpointOutcome | None:
        """Consume one armed outcome matching a new endpoint, if any."""
        with self.lock:
            for outcome in self.endpoint_outcomes:
                if outcome.count > 0 and outcome.matches(account, service_name):
                    outcome.count -= 1
                    if outcome.count == 0:
                        self.endpoint_outcomes.remove(outcome)
                    return outcome
        return None

    # Lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Wipe all state: every moto backend (all accounts, all services) and the world."""
        with self.lock:
            moto_api_backend.reset()
            self.services.clear()
            self.endpoints.clear()
            self.load_balancers.clear()
            self.client_tokens.clear()
            with self._requests_lock:
                self.requests.clear()
            self.quotas.clear()
            self.endpoint_outcomes.clear()
            self.ipv6_hosts.clear()
            self._access_key_accounts.clear()
            self.denials.clear()
            self.throttler.reset()
            self.faults.reset()

    # Inspection ------------------------------------------------------------------------------

    def objects(self, account: str | None = None, region: str | None = None) -> dict[str, object]:
        """Load balancers, endpoint services and endpoints, as JSON-ready dicts."""
        self.advance()
        with self.lock:
            lbs: list[dict[str, object]] = []
            for account_id, per_region in list(elbv2_backends.items()):
                for region_name, backend in list(per_region.items()):
                    if _excluded(account_id, region_name, account, region):
                        continue
                    for lb in list(backend.load_balancers.values()):
                        tags = backend.tagging_service.get_tag_dict_for_resource(lb.arn)
                        lbs.append(
                            {
                                "arn": lb.arn,
                                "name": lb.name,
                                "type": lb.type,
                                "state": lb.state,
                                "account": account_id,
                                "region": region_name,
                                "tags": tags,
                            }
                        )
            services = [
                {
                    "id": svc.id,
                    "name": svc.service_name,
                    "owner": svc.owner,
                    "region": svc.region_name,
                    "state": svc.service_state,
                    "acceptance_required": svc.acceptance_required,
                    "network_load_balancer_arns": list(svc.network_load_balancer_arns),
                    "availability_zones": list(svc.availability_zones),
                    "private_dns_name": svc.private_dns_name,
                    "private_dns_state": svc.dns_verification.state
                    if svc.dns_verification
                    else None,
                    "supported_ip_address_types": list(svc.supported_ip_address_types),
                    "supported_regions": svc.supported_regions_at(self.clock.now()),
                    "allowed_principals": sorted(svc.principals),
                    "tags": _tag_dict(svc.get_tags()),
                }
                for svc in self.services.values()
                if not _excluded(svc.owner, svc.region_name, account, region)
            ]
            endpoints = [
                {
                    "id": ep.id,
                    "owner": ep.account_id,
                    "region": ep.region_name,
                    "service_name": ep.service_name,
                    "service_id": ep.service.id if ep.service else None,
                    "state": ep.state,
                    "vpc_id": ep.vpc_id,
                    "subnet_ids": list(ep.subnet_ids or []),
                    "network_interface_ids": list(ep.network_interface_ids),
                    "tags": _tag_dict(ep.get_tags()),
                    "type": ep.vpc_endpoint_type,
                    "route_table_ids": list(ep.route_table_ids),
                    "ip_address_type": ep.ip_address_type,
                    "dns_record_ip_type": (ep.dns_options or {}).get("DnsRecordIpType"),
                    "private_dns_enabled": bool(ep.private_dns_enabled),
                    "dns_names": [entry["DnsName"] for entry in ep.dns_entries or []],
                    "service_region": ep.service_region,
                    "failure_reason": ep.failure_reason,
                }
                for ep in self.endpoints.values()
                if not _excluded(ep.account_id, ep.region_name, account, region)
            ]
            gateway_endpoints = [
                {"id": ep.id, "owner": account_id, "region": region_name, "state": ep.state}
                for account_id, per_region in list(ec2_backends.items())
                for region_name, backend in list(per_region.items())
                if not _excluded(account_id, region_name, account, region)
                for ep in list(backend.vpc_end_points.values())
                if ep.id not in self.endpoints
            ]
            return {
                "load_balancers": lbs,
                "endpoint_services": services,
                "endpoints": endpoints,
                "other_endpoints": gateway_endpoints,
            }

    def request_log(self) -> list[dict[str, object]]:
        with self._requests_lock:
            snapshot = list(self.requests)
        return [dataclasses.asdict(entry) for entry in snapshot]


def _tag_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    """moto's EC2 tag records as the ``{key: value}`` the admin API shows."""
    return {tag["key"]: tag["value"] for tag in tags}


def _excluded(account: str, region: str, want_account: str | None, want_region: str | None) -> bool:
    return (want_account is not None and account != want_account) or (
        want_region is not None and region != want_region
    )


_current: World | None = None
_current_lock = threading.Lock()


def install(world: World) -> None:
    """Make ``world`` the one the moto seams use. One simulator per process (moto's rule)."""
    global _current  # noqa: PLW0603 - moto's backends are process-global; so is the world
    with _current_lock:
        _current = world


def uninstall(world: World) -> None:
    global _current  # noqa: PLW0603
    with _current_lock:
        if _current is world:
            _current = None


def current() -> World:
    if _current is None:
        raise RuntimeError("no simulator is running in this process: call server.start()")
    return _current


def wall_time() -> float:
    """Epoch seconds, for request records (kept here so tests can read one definition)."""
    return time.time()
