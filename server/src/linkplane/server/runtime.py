"""The composition root: wires settings, database, change feed, gRPC server (and workers).

`Runtime` owns start-up order (database → change feed → server) and shutdown order (health
NOT_SERVING → drain in-flight calls → stop → close the database), so both the CLI and the test
suite run exactly the same process shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import prometheus_client
import structlog

from linkplane.server.api import authz, identity, limits, rpc
from linkplane.server.api import server as api_server
from linkplane.server.aws import permissions, sessions, throttlers
from linkplane.server.config import Role, Settings
from linkplane.server.reconciler import connections, engine, garbage, services, workspace
from linkplane.server.storage import buckets, changes, database, queues

log = structlog.get_logger("linkplane.runtime")
HEALTH_CHECK_SECONDS = 2.0


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set from now on.

    An entry point installs it before start-up: a signal that arrives while the process still
    starts (migrating, loading AWS models, freezing its heap; an orchestrator may stop a pod
    whose probes just passed) then ends it with a graceful stop instead of killing it.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


class Runtime:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.db = database.Database(
            database_url,
            pool_size=settings.database_pool_size,
            pool_overflow=settings.database_pool_overflow,
            timeout=settings.database_timeout_seconds,
        )
        self.feed = changes.ChangeFeed(self.db.url)
        self.port = 0
        self._server: object | None = None
        self._health: api_server.HealthStatus | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.engine: engine.Engine | None = None
        self._clients: sessions.AwsClients | None = None
        self._limiter: throttlers.Limiter | None = None
        self.collector: garbage.Collector | None = None
        self.deps: rpc.Dependencies | None = None
        self.queues: queues.Sampler | None = None

    async def start(self) -> int:
        if self.settings.metrics_listen:
            host, _, port = self.settings.metrics_listen.rpartition(":")
            # Prometheus scrapes RPC, reconcile and AWS-call counters from here.
            prometheus_client.start_http_server(int(port), addr=host or "0.0.0.0")  # noqa: S104
        await self.feed.start()
        if self.settings.role in {Role.WORKER, Role.ALL}:
            await self._start_workers()
        if self.settings.role == Role.WORKER:
            return 0
        authenticator = identity.Authenticator.from_settings(self.settings)
        deps = rpc.Dependencies(
            db=self.db,
            feed=self.feed,
            authenticator=authenticator,
            page_secret=self.settings.page_token_key(),
            # Without authentication (dev mode) every caller is the local administrator.
            authorizer=authz.Authorizer(
                self.db, admins=self.settings.admins, enabled=authenticator.enabled
            ),
            limits=limits.Limits.from_settings(self.settings),
            aws=self._aws_access(),
        )
        tls = None
        if self.settings.tls_cert_file and self.settings.tls_key_file:
            tls = (
                self.settings.tls_key_file.read_bytes(),
                self.settings.tls_cert_file.read_bytes(),
            )
        self.deps = deps
        client_ca = None
        if self.settings.tls_client_ca_file is not None:
            client_ca = self.settings.tls_client_ca_file.read_bytes()
        server, self._health, self.port = api_server.build(
            deps, self.settings.listen, tls, client_ca, reflection_enabled=self.settings.reflection
        )
        self._server = server
        await server.start()
        serving = await self.db.ping()
        await api_server.set_serving(self._health, serving)
        self._tasks.append(asyncio.create_task(self._watch_database(serving)))
        log.info(
            "linkplane.serving",
            listen=self.settings.listen,
            port=self.port,
            database_reachable=serving,
        )
        return self.port

    async def load_aws_models(self) -> None:
        """Load the AWS service models now (sessions.AwsClients.load_models), in a process
        whose entry point freezes its start-up heap next; a no-op without AWS clients."""
        if self._clients is not None:
            await self._clients.load_models()

    def _aws_access(self) -> permissions.Access:
        """The AWS clients and limiter: the workers' when this process runs them (so calls the
        API makes, like CheckAccount's, share their rate limits), else made here. Creating
        clients does no I/O, so an API-only process without AWS settings loses nothing."""
        if self._clients is None or self._limiter is None:
            secret = self.settings.aws_secret_access_key
            key = self.settings.aws_access_key_id
            self._clients = sessions.AwsClients(
                sessions.Settings(
                    endpoint_url=self.settings.aws_endpoint_url,
                    access_key_id=key.get_secret_value() if key else None,
                    secret_access_key=secret.get_secret_value() if secret else None,
                )
            )
            self._limiter = (
                throttlers.SharedLimiter(
                    buckets.PostgresBuckets(self.db), time_scale=self.settings.aws_time_scale
                )
                if self.settings.aws_shared_rate_limits
                else throttlers.Limiter(time_scale=self.settings.aws_time_scale)
            )
        return permissions.Access(clients=self._clients, limiter=self._limiter)

    async def _start_workers(self) -> None:
        aws = self._aws_access()
        space = workspace.Workspace(
            db=self.db,
            clients=aws.clients,
            limiter=aws.limiter,
            timing=workspace.Timing(
                transitional_seconds=self.settings.transitional_resync_seconds,
                resync_seconds=self.settings.resync_interval_seconds,
            ),
            lease_seconds=self.settings.lease_seconds,
        )
        self.engine = engine.Engine(
            db=self.db,
            feed=self.feed,
            reconcilers=[
                services.ServiceReconciler(space),
                connections.ConnectionReconciler(space),
            ],
            concurrency=self.settings.workers,
            lease_seconds=self.settings.lease_seconds,
            poll_seconds=min(1.0, self.settings.transitional_resync_seconds),
        )
        await self.engine.start()
        # Queue depth and oldest-due age, per kind (docs/observability.md).
        self.queues = queues.Sampler(
            self.db, [(r.kind, r.model) for r in self.engine.reconcilers.values()]
        )
        self.queues.start()
        self.collector = garbage.Collector(
            space, interval_seconds=self.settings.garbage_interval_seconds
        )
        if self.settings.garbage_collection:
            await self.collector.start()
        log.info("linkplane.workers", concurrency=self.settings.workers)

    async def _watch_database(self, serving: bool) -> None:
        """Health follows the database: NOT_SERVING while it is unreachable, then back."""
        assert self._health is not None
        while True:
            await asyncio.sleep(HEALTH_CHECK_SECONDS)
            reachable = await self.db.ping()
            if reachable != serving:
                serving = reachable
                await api_server.set_serving(self._health, serving)
                log.warning("linkplane.database", reachable=reachable)

    async def stop(self) -> None:
        """Graceful: NOT_SERVING first, so balancers stop routing; then drain; then close."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace_seconds)  # type: ignore[attr-defined]
        if self.collector is not None:
            await self.collector.stop()
        if self.queues is not None:
            await self.queues.stop()
        if self.engine is not None:
            await self.engine.stop()
        if self._clients is not None:
            await self._clients.close()
        await self.feed.stop()
        await self.db.close()
        log.info("linkplane.stopped")

    async def run_until_signalled(self, stop: asyncio.Event | None = None) -> None:
        """Serve until SIGTERM or SIGINT (`stop`, from `stop_on_signals`), then stop."""
        if stop is None:
            stop = stop_on_signals()
        await stop.wait()
        log.info("linkplane.shutdown", grace_seconds=self.settings.shutdown_grace_seconds)
        await self.stop()
