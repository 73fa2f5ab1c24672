"""Why a reconcile pass stopped short, in one vocabulary for both reconcilers.

AWS's failures arrive as ``aws.errors.AwsError``, classified where they are caught. linkplane's
own reasons to stop are not AWS's and are not dressed up as AWS errors (kopf's split):

- :class:`PermanentError`: the spec cannot be met as it stands (the account is no longer
  registered, the target Service is gone, the VPC's endpoint quota is full, the service does not
  serve the consumer's Region or IP type, an adopted load balancer is not a dual-stack NLB). The
  resource is FAILED until its spec changes.
- :class:`TemporaryError`: not yet (a service not visible while its permissions propagate): the
  engine runs another pass after ``delay`` seconds.

Either way the user sees the code, the message and the AWS action involved (if any) in the
resource's ``last_aws_error`` (the API's name, kept: it reports pre-flight checks too) and in its
Ready condition, both written by :func:`record`, which the two reconcilers share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeAlias

import structlog

from linkplane.server.aws import errors as aws_errors
from linkplane.server.reconciler import progress
from linkplane.server.storage import changes, records
from linkplane.server.storage.database import Session

log = structlog.get_logger("linkplane.reconciler.failures")


class ReconcileError(Exception):
    """linkplane's own reason for a pass to stop; the same attributes the engine reads off an
    ``AwsError`` (code, message, action, retryable, retry_after, requeue_after)."""

    retryable: ClassVar[bool] = False
    retry_after: float | None = None  # AWS's hint; linkplane's own errors carry none

    def __init__(
        self, code: str, message: str, *, action: str | None = None, delay: float | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.action = action
        self.requeue_after = delay if self.retryable else None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.action}" if self.action else ""
        return f"{self.code}{where}: {self.message}"


class PermanentError(ReconcileError):
    """The spec cannot be met as it stands: FAILED until it changes."""

    retryable = False


class TemporaryError(ReconcileError):
    """Not yet: another pass after ``delay`` seconds (or the engine's backoff without one)."""

    retryable = True


Failure: TypeAlias = aws_errors.AwsError | ReconcileError
"""What a pass may raise for the engine to record: AWS's failure or linkplane's own."""


def failure_json(failure: Failure) -> dict[str, Any]:
    """A failure as the resource's status stores it (``last_aws_error``)."""
    return {
        "code": failure.code,
        "message": failure.message,
        "action": failure.action or "",
        "retryable": failure.retryable,
        "time": progress.now_iso(),
    }


def keeps_permanent_error(row: Any, status: dict[str, Any], failure: Failure) -> bool:
    """Whether a resource FAILED for its current spec keeps its permanent error rather than
    recording ``failure``: a transient failure of a later look (a 5xx on a resync) says nothing
    about why it failed, and must not replace the error that tells the user what to fix."""
    recorded = status.get("last_aws_error") or {}
    return (
        failure.retryable
        and row.state == "FAILED"
        and row.generation == row.observed_generation
        and bool(recorded)
        and not recorded.get("retryable", True)
    )


async def record(
    session: Session,
    row: Any,
    failure: Failure,
    *,
    kind: str,
    settle: Callable[[Session, Any], Awaitable[None]],
) -> None:
    """Record a failed pass on ``row`` (a leased Service or Connection): ``last_aws_error``,
    the Ready condition (unknown while retrying, false with the failure's code when
    permanent), FAILED for a permanent failure of a live resource, the progress of its open
    Operations, then ``settle`` (which finishes the Operations the state decides) and a
    change notification."""
    status = dict(row.status or {})
    if keeps_permanent_error(row, status, failure):
        log.info(f"{kind}.transient_error_while_failed", name=row.name, code=failure.code)
        return
    status["last_aws_error"] = failure_json(failure)
    progress.set_condition(
        status,
        "Ready",
        None if failure.retryable else False,
        "Retrying" if failure.retryable else failure.code,
        str(failure),
        row.generation,
    )
    row.status = status
    if not failure.retryable and row.delete_time is None:
        row.state = "FAILED"
        row.reconciling = False
        row.observed_generation = row.generation
    row.revision += 1
    records.mark_updated(row)
    await progress.set_progress(
        session,
        row.uid,
        f"{failure.code}; retrying" if failure.retryable else f"failed: {failure}",
    )
    await records.write_back(session, row)
    await settle(session, row)
    await changes.notify(session, kind=kind, name=row.name, uid=str(row.uid))
