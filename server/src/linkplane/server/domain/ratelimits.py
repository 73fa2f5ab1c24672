"""What a shared rate-limit bucket is, in the terms both its users agree on.

``aws.throttlers`` decides which buckets an AWS call draws from and how big they are;
``storage.buckets`` keeps their state in Postgres so every replica draws from the same ones.
The two adapters may not import each other (layering), so the bucket they exchange is defined
here, below both.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, order=True)
class BucketLimit:
    """One token bucket shared by every replica: whose it is and how it fills.

    Ordered by key so that a call drawing from several buckets (ELBv2: its family and the
    account-level bucket) always locks their rows in the same order, and two such calls
    cannot deadlock.
    """

    account: str
    """AWS account id."""
    region: str
    """AWS Region, or ``global`` for global services (Route 53)."""
    family: str
    """Action family, ``"<service>:<family>"`` (``ec2:endpoint-mutation``)."""
    capacity: float
    """Tokens the bucket holds when full (the effective burst)."""
    refill: float
    """Tokens added per second (the effective, time-scaled refill)."""
