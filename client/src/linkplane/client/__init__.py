"""linkplane.client: typed Python clients for linkplane, the AWS PrivateLink control plane.

`AsyncClient` (asyncio) and `Client` (blocking) expose one keyword-argument method per RPC of
ProviderService, ConsumerService, AccountService, AuditService, google.iam.v1.IAMPolicy and
google.longrunning.Operations (`linkplane.client.iam` helps edit IAM policies). Mutations
that wait on AWS return operation handles (`await op.result()`), lists return pagers, watches
return reconnecting iterators, and every failure is a `LinkplaneError` subclass. The generated
messages live in `linkplane.v1`; `lpctl` (the `cli` extra) is built on `Client`.
"""

from linkplane.client.aio import AsyncClient
from linkplane.client.config import DEFAULT_ADDRESS, Backoff, ClientConfig
from linkplane.client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    LinkplaneError,
    NotFound,
    OperationFailed,
    OperationTimeout,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from linkplane.client.operations import AsyncOperation, Operation, ProgressCallback
from linkplane.client.pagers import AsyncPager, Page, Pager
from linkplane.client.sync import Client
from linkplane.client.watches import AsyncWatch, Watch, WatchEvent

__all__ = [
    "DEFAULT_ADDRESS",
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncOperation",
    "AsyncPager",
    "AsyncWatch",
    "Backoff",
    "Cancelled",
    "Client",
    "ClientConfig",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "LinkplaneError",
    "NotFound",
    "Operation",
    "OperationFailed",
    "OperationTimeout",
    "OutOfRange",
    "Page",
    "Pager",
    "PermissionDenied",
    "ProgressCallback",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "Watch",
    "WatchEvent",
]
