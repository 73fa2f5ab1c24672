"""Queries over a Service's connection inventory (what AWS last reported about its
endpoint connections): paging, lookup and counting live ones for the provider API; storing
what AWS reported, and the decisions made on each connection, for the Service's reconciler."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, case, func, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.domain import filters, specs, states
from linkplane.server.storage import filtering, models, records

Row = models.ServiceConnection


def _columns() -> dict[str, object]:
    return {
        "state": Row.state,
        "owner_account_id": Row.owner_account_id,
        "vpc_id": Row.vpc_id,
        "region": Row.region,
        "connection": _visible_connection(),
    }


def _visible_connection() -> Any:
    """The consumer's Connection name as the provider may filter on it: only a Connection of the
    service's own project (like the API shows it), so a filter cannot probe other projects."""
    project = (
        select(models.Service.project)
        .where(models.Service.uid == Row.service_uid)
        .correlate(Row)
        .scalar_subquery()
    )
    same_project = Row.connection_name.startswith(func.concat("projects/", project, "/"))
    return case((same_project, Row.connection_name), else_="")


async def page(
    session: AsyncSession,
    service_uid: uuid.UUID,
    *,
    node: filters.Node | None,
    after: str | None,
    limit: int,
) -> tuple[Sequence[Row], bool]:
    """One page ordered by endpoint id, and whether more rows follow."""
    query = filtering.narrowed(select(Row).where(Row.service_uid == service_uid), node, _columns())
    return await records.keyset_page(session, query, Row.endpoint_id, after, limit)


async def endpoint_states(
    session: AsyncSession, service: models.Service, endpoint_ids: Collection[str]
) -> dict[str, str]:
    """Each known endpoint's state (`PENDING_ACCEPTANCE`, …) as the inventory last saw it.

    The inventory is refreshed by the Service's passes, so it can lag a consumer who has just
    seen its endpoint wait for acceptance. For linkplane's own Connections to this service the
    inventory does not show yet, the state their consumer observed stands in, so a provider
    can accept what the consumer already sees as pending."""
    query = select(Row.endpoint_id, Row.state).where(
        Row.service_uid == service.uid, Row.endpoint_id.in_(endpoint_ids)
    )
    found: dict[str, str] = {e: s for e, s in (await session.execute(query)).all()}
    unseen = [e for e in endpoint_ids if e not in found]
    if unseen:
        ours = select(models.Connection.endpoint_id, models.Connection.state).where(
            models.Connection.service == service.name,
            models.Connection.endpoint_id.in_(unseen),
            models.Connection.delete_time.is_(None),
        )
        for endpoint_id, state in (await session.execute(ours)).all():
            endpoint_state = states.ENDPOINT_STATE_OF_CONNECTION.get(state)
            if endpoint_id is not None and endpoint_state is not None:
                found[endpoint_id] = endpoint_state
    return found


async def count_live(
    session: AsyncSession, service: models.Service, live_states: Collection[str]
) -> int:
    """Live connections that keep the service from being deleted without force."""
    # The inventory may lag a just-deleted linkplane Connection by one resync: those do not
    # count, since their endpoints are already on their way out.
    alive = select(models.Connection.name).where(models.Connection.delete_time.is_(None))
    observed = await session.execute(
        select(func.count())
        .select_from(Row)
        .where(
            Row.service_uid == service.uid,
            Row.state.in_(live_states),
            or_(Row.connection_name == "", Row.connection_name.in_(alive)),
        )
    )
    ours = await records.count_where(
        session,
        models.Connection,
        models.Connection.service == service.name,
        models.Connection.delete_time.is_(None),
    )
    return max(int(observed.scalar_one()), ours)


async def of_endpoints(
    session: AsyncSession, service_uid: uuid.UUID, endpoint_ids: Collection[str]
) -> Sequence[Row]:
    """The inventory rows of these endpoints (those it has)."""
    query = select(Row).where(Row.service_uid == service_uid, Row.endpoint_id.in_(endpoint_ids))
    return (await session.execute(query)).scalars().all()


async def record_decision(
    session: AsyncSession, service_uid: uuid.UUID, endpoint_id: str, decision: dict[str, Any]
) -> None:
    """Note the decision applied to an endpoint's connection; an endpoint the inventory does
    not show yet is entered as pending acceptance (the next refresh fills it in)."""
    await session.execute(
        insert(Row)
        .values(
            service_uid=service_uid,
            endpoint_id=endpoint_id,
            owner_account_id="",
            state="PENDING_ACCEPTANCE",
            decision=decision,
            dns_entries={},
        )
        .on_conflict_do_update(
            index_elements=["service_uid", "endpoint_id"], set_={"decision": decision}
        )
    )


class Observed(Protocol):
    """One endpoint connection as AWS reported it (an aws/endpoint_services.EndpointConnection)."""

    @property
    def endpoint_id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def create_time(self) -> datetime | None: ...
    @property
    def dns_entries(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class _Ours:
    """A linkplane Connection behind an endpoint: what the provider's inventory shows of it."""

    name: str
    vpc_id: str
    request_message: str


# Every endpoint connection AWS reported, in one statement built once: a row each from one JSON
# array, not an INSERT (and a round trip) per connection, which a Service's pass over 1,000
# connections was a thousand times, repeated on every pass while they arrived.
_UPSERT_OBSERVED = text(
    "INSERT INTO service_connections (service_uid, endpoint_id, owner_account_id, region,"
    " state, connection_name, vpc_id, request_message, dns_entries, create_time, decision,"
    " observe_time)"
    " SELECT :service_uid, r.endpoint_id, r.owner_account_id, r.region, r.state,"
    " r.connection_name, r.vpc_id, r.request_message, r.dns_entries, r.create_time,"
    " '{}'::jsonb, now()"
    " FROM jsonb_to_recordset(:observed) AS r(endpoint_id text, owner_account_id text,"
    " region text, state text, connection_name text, vpc_id text, request_message text,"
    " dns_entries jsonb, create_time timestamptz)"
    " ON CONFLICT (service_uid, endpoint_id) DO UPDATE SET"
    " owner_account_id = excluded.owner_account_id, region = excluded.region,"
    " state = excluded.state, connection_name = excluded.connection_name,"
    " vpc_id = excluded.vpc_id, request_message = excluded.request_message,"
    " dns_entries = excluded.dns_entries, create_time = excluded.create_time,"
    " observe_time = excluded.observe_time"
).bindparams(
    bindparam("service_uid", type_=UUID(as_uuid=True)), bindparam("observed", type_=JSONB())
)


async def store_observed(
    session: AsyncSession, service: models.Service, connections: Sequence[Observed]
) -> None:
    """Mirror AWS's view of the service's connections, including consumers outside linkplane.

    AWS does not report a connection's VPC; for linkplane's own Connections in the service's
    project it comes from their spec."""
    endpoint_ids = [c.endpoint_id for c in connections]
    ours: dict[str, _Ours] = {}
    for endpoint_id, name, project, spec in (
        await session.execute(
            select(
                models.Connection.endpoint_id,
                models.Connection.name,
                models.Connection.project,
                models.Connection.spec,
            ).where(models.Connection.endpoint_id.in_(endpoint_ids))
        )
    ).all():
        connection_spec = specs.connection_from_json(spec or {})
        # A consumer in another project shows the provider only what AWS would: not its VPC.
        vpc_id = connection_spec.vpc_id if project == service.project else ""
        ours[endpoint_id] = _Ours(name, vpc_id, connection_spec.request_message)
    observed: dict[str, dict[str, Any]] = {}
    for connection in connections:
        mine = ours.get(connection.endpoint_id, _Ours("", "", ""))
        created = connection.create_time
        observed[connection.endpoint_id] = {
            "endpoint_id": connection.endpoint_id,
            "owner_account_id": connection.owner,
            "region": connection.region,
            "state": connection.state,
            "connection_name": mine.name,
            "vpc_id": mine.vpc_id,
            "request_message": mine.request_message,
            "dns_entries": {
                "entries": [
                    {"dns_name": name, "hosted_zone_id": zone}
                    for name, zone in connection.dns_entries
                ]
            },
            "create_time": created.isoformat() if created is not None else None,
        }
    if observed:
        await session.execute(
            _UPSERT_OBSERVED, {"service_uid": service.uid, "observed": list(observed.values())}
        )
    # Endpoints AWS no longer reports are gone (deleted by their owners).
    stale = select(Row).where(
        Row.service_uid == service.uid,
        Row.endpoint_id.not_in(endpoint_ids),
        Row.state != "DELETED",
    )
    for row in (await session.execute(stale)).scalars():
        row.state = "DELETED"
