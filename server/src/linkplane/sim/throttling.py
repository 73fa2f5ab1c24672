"""AWS's API request throttling: token buckets per account, Region and action family.

The gateway asks ``Throttler.admit()`` before serving each EC2 or ELBv2 request. Sizes and refill
rates are AWS's documented ones (docs/sim.md, "Throttling"): like AWS, the generic families
(EC2 non-mutating, EC2 mutating, ELBv2 other mutating) share one bucket per account and Region,
while the actions AWS lists individually (CreateVpcEndpoint, AcceptVpcEndpointConnections, …)
each have their own. ELBv2 also charges every call to an account-level bucket. Refill runs on
the simulated clock, so ``time_scale`` multiplies the rates.
"""

import collections
import dataclasses
import threading

from linkplane.sim import clocks


@dataclasses.dataclass(frozen=True)
class BucketSpec:
    """One token bucket family: ``name`` is shared by all the actions that map to it."""

    name: str
    capacity: float
    refill_per_second: float


_EC2_NON_MUTATING = BucketSpec("ec2:non-mutating", 100, 20)
_EC2_MUTATING = BucketSpec("ec2:mutating", 50, 5)
_EC2_SPECIFIC: dict[str, tuple[float, float]] = {
    "CreateVpcEndpoint": (4, 0.3),
    "DeleteVpcEndpoints": (4, 0.3),
    "ModifyVpcEndpoint": (4, 0.3),
    "AcceptVpcEndpointConnections": (10, 1),
    "RejectVpcEndpointConnections": (10, 1),
    "CreateVpcEndpointServiceConfiguration": (10, 1),
    "ModifyVpcEndpointServiceConfiguration": (10, 1),
    "DeleteVpcEndpointServiceConfigurations": (10, 1),
}

_ELBV2_ACCOUNT = BucketSpec("elbv2:account", 40, 10)
_ELBV2_OTHER_MUTATING = BucketSpec("elbv2:mutating", 20, 3)
_ELBV2_SPECIFIC: dict[str, tuple[float, float]] = {
    "CreateLoadBalancer": (10, 0.2),
    "SetSubnets": (10, 0.2),
    "RegisterTargets": (20, 4),
    "DeregisterTargets": (20, 4),
}

_NON_MUTATING_PREFIXES = ("Describe", "List", "Get")


def buckets_for(service: str, action: str) -> tuple[BucketSpec, ...]:
    """The buckets a call must take one token from each; empty when AWS's service is not
    modelled as throttled here (STS, Route53)."""
    if service == "ec2":
        if action in _EC2_SPECIFIC:
            capacity, refill = _EC2_SPECIFIC[action]
            return (BucketSpec(f"ec2:{action}", capacity, refill),)
        if action.startswith(_NON_MUTATING_PREFIXES):
            return (_EC2_NON_MUTATING,)
        return (_EC2_MUTATING,)
    if service == "elasticloadbalancing":
        if action in _ELBV2_SPECIFIC:
            capacity, refill = _ELBV2_SPECIFIC[action]
            return (_ELBV2_ACCOUNT, BucketSpec(f"elbv2:{action}", capacity, refill))
        if action.startswith(_NON_MUTATING_PREFIXES):
            return (_ELBV2_ACCOUNT,)
        return (_ELBV2_ACCOUNT, _ELBV2_OTHER_MUTATING)
    return ()


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated_at: float


class Throttler:
    """Token buckets keyed by (account, region, bucket name), refilled on the sim clock."""

    def __init__(self, clock: clocks.SimClock, enabled: bool = True) -> None:
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._throttled: collections.Counter[tuple[str, str]] = collections.Counter()

    def admit(self, service: str, action: str, account: str, region: str) -> bool:
        """Take a token from each bucket of the call, or none at all and return False."""
        specs = buckets_for(service, action)
        if not self.enabled or not specs:
            return True
        now = self._clock.now()
        with self._lock:
            buckets = [self._refilled(spec, account, region, now) for spec in specs]
            if any(bucket.tokens < 1.0 for bucket in buckets):
                self._throttled[(account, action)] += 1
                return False
            for bucket in buckets:
                bucket.tokens -= 1.0
            return True

    def _refilled(self, spec: BucketSpec, account: str, region: str, now: float) -> _Bucket:
        key = (account, region, spec.name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=spec.capacity, updated_at=now)
        else:
            elapsed = max(0.0, now - bucket.updated_at)
            bucket.tokens = min(spec.capacity, bucket.tokens + elapsed * spec.refill_per_second)
            bucket.updated_at = now
        return bucket

    def throttle_counts(self) -> dict[str, dict[str, int]]:
        """Throttled requests so far: ``{account: {action: count}}``."""
        with self._lock:
            counts: dict[str, dict[str, int]] = {}
            for (account, action), count in sorted(self._throttled.items()):
                counts.setdefault(account, {})[action] = count
            return counts

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._throttled.clear()
