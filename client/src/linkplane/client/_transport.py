"""Channels, credentials and the retrying unary call shared by `AsyncClient` and `Client`.

Kept apart from the clients so both flavours apply the same rules: one deadline per call that
covers every attempt, retries only on UNAVAILABLE and on RESOURCE_EXHAUSTED that carries a
`google.rpc.RetryInfo` (AIP-194: other codes mean the request itself is wrong or the state
forbids it, so repeating it cannot help; a RetryInfo is the server saying a later try may
succeed, and when), and errors mapped through
`errors.from_rpc_error` so raw `grpc.RpcError`s never reach callers.
"""

# ASYNC109: `timeout` is the gRPC deadline sent to the server (it propagates, AIP-style);
# asyncio.timeout() would only stop waiting locally and leave the server working.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio

from linkplane.client import config as config_
from linkplane.client import errors

Metadata = tuple[tuple[str, str], ...]
ResponseT = TypeVar("ResponseT")


class _BearerToken(grpc.AuthMetadataPlugin):
    """Call credentials that read the token on every call (a token file may be rotated)."""

    def __init__(self, config: config_.ClientConfig) -> None:
        self._config = config

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        try:
            token = self._config.bearer_token()
        except (OSError, ValueError) as error:
            callback((), error)
            return
        callback((("authorization", f"Bearer {token}"),) if token else (), None)


def channel_credentials(config: config_.ClientConfig) -> grpc.ChannelCredentials | None:
    """TLS channel credentials (with the token as call credentials), or None for plaintext."""
    if not config.uses_tls:
        return None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=config.tls_root_certificates,
        private_key=config.tls_client_private_key,
        certificate_chain=config.tls_client_certificate_chain,
    )
    if config.has_credentials:
        # gRPC only attaches call credentials on secure channels, so they are used with TLS
        # and the plain header (call_metadata) is used without.
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.metadata_call_credentials(_BearerToken(config), name="linkplane")
        )
    return credentials


def call_metadata(config: config_.ClientConfig) -> Metadata:
    """Metadata sent with every call: the bearer token when the channel is plaintext.

    A token file that cannot be read is `Unauthenticated` here, before anything is sent.
    """
    if not config.has_credentials or config.uses_tls:
        return ()
    try:
        token = config.bearer_token()
    except (OSError, ValueError) as error:
        raise errors.Unauthenticated(
            f"cannot read the bearer token: {error}", code=grpc.StatusCode.UNAUTHENTICATED
        ) from error
    return (("authorization", f"Bearer {token}"),)


def _options(config: config_.ClientConfig) -> list[tuple[str, Any]]:
    return [("grpc.primary_user_agent", config.user_agent)]


def async_channel(config: config_.ClientConfig) -> grpc.aio.Channel:
    """A grpc.aio channel to `config.address`."""
    credentials = channel_credentials(config)
    if credentials is None:
        return grpc.aio.insecure_channel(config.address, options=_options(config))
    return grpc.aio.secure_channel(config.address, credentials, options=_options(config))


def sync_channel(config: config_.ClientConfig) -> grpc.Channel:
    """A blocking grpc channel to `config.address`."""
    credentials = channel_credentials(config)
    if credentials is None:
        return grpc.insecure_channel(config.address, options=_options(config))
    return grpc.secure_channel(config.address, credentials, options=_options(config))


async def close_async(channel: grpc.aio.Channel) -> None:
    """Close an asyncio channel at once, cancelling the calls still in flight."""
    await channel.close(grace=None)


def close_sync(channel: grpc.Channel) -> None:
    """Close a blocking channel at once (the twin of `close_async`)."""
    channel.close()


def _retry_delay(
    error: errors.LinkplaneError, attempt: int, config: config_.ClientConfig, deadline: float
) -> float | None:
    """Seconds to wait before the next attempt, or None when the error is final.

    UNAVAILABLE is retried with backoff, or after the server's RetryInfo when that is longer.
    RESOURCE_EXHAUSTED is retried only when it carries a RetryInfo (the server's per-caller caps
    do; a quota would not) and then after the advised delay, for fewer attempts.
    """
    advised = error.retry_delay
    if error.code is grpc.StatusCode.UNAVAILABLE:
        if attempt + 1 >= config.max_attempts:
            return None
        delay = max(config.retry_backoff.delay(attempt), advised or 0.0)
    elif error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and advised is not None:
        if attempt + 1 >= config.max_exhausted_attempts:
            return None
        delay = advised + spread(advised)
    else:
        return None
    # Sleeping past the deadline would only turn the error into a less useful timeout.
    if time.monotonic() + delay >= deadline:
        return None
    return delay


def spread(advised: float) -> float:
    """Up to 10% extra on an advised delay, so callers refused together do not return together."""
    # Random here is for spreading load, not for security.
    return advised * 0.1 * random.random()  # noqa: S311


class _Attempts:
    """The attempts of one unary call: one deadline over all of them, the same metadata on
    each, and the wait before the next attempt (or the error, when the last one is final)."""

    def __init__(self, config: config_.ClientConfig, timeout: float | None) -> None:
        self._config = config
        self._deadline = time.monotonic() + (config.default_timeout if timeout is None else timeout)
        self.metadata = call_metadata(config)
        """The call's metadata, read once so every attempt carries the same credentials."""
        self._attempt = 0

    def timeout(self) -> float:
        """The gRPC timeout of the next attempt: what is left of the deadline."""
        return max(self._deadline - time.monotonic(), 0.001)

    def failed(self, error: grpc.RpcError) -> float:
        """Seconds to wait before retrying after `error`; raises it, mapped, when it is final."""
        mapped = errors.from_rpc_error(error)
        delay = _retry_delay(mapped, self._attempt, self._config, self._deadline)
        if delay is None:
            raise mapped from error
        self._attempt += 1
        return delay


async def call_async(
    method: Callable[..., Awaitable[ResponseT]],
    request: Any,
    *,
    config: config_.ClientConfig,
    timeout: float | None,
) -> ResponseT:
    """Call a grpc.aio unary method with the deadline, retry and error-mapping rules.

    The same `request` object is re-sent on every attempt, so its `request_id` is identical and
    the server can answer a retry with the first attempt's result.
    """
    attempts = _Attempts(config, timeout)
    while True:
        try:
            return await method(request, timeout=attempts.timeout(), metadata=attempts.metadata)
        except grpc.RpcError as error:
            delay = attempts.failed(error)
        await asyncio.sleep(delay)


def call_sync(
    method: Callable[..., ResponseT],
    request: Any,
    *,
    config: config_.ClientConfig,
    timeout: float | None,
) -> ResponseT:
    """Blocking twin of `call_async`: same deadline, retry and error-mapping rules."""
    attempts = _Attempts(config, timeout)
    while True:
        try:
            return method(request, timeout=attempts.timeout(), metadata=attempts.metadata)
        except grpc.RpcError as error:
            delay = attempts.failed(error)
        time.sleep(delay)
