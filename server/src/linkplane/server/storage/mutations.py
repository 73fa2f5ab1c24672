"""A mutation's closing writes in one statement: the row it creates, its audit entry and the
outcome a retry with the same request_id replays.

Each write is a data-modifying CTE of one statement, so the mutation pays one round trip for
all of them instead of one per record (and no ORM flush at commit). They run in the caller's
transaction: all of them commit with the change, or none. The statement is built once per
shape (which table, which columns, whether a request id is completed) with bound parameters,
so SQLAlchemy reuses its compiled SQL and asyncpg its prepared statement.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnDefault,
    Select,
    Table,
    bindparam,
    insert,
    inspect,
    literal,
    select,
)
from sqlalchemy import update as sql_update

from linkplane.server.storage import driver, models


@dataclass(frozen=True)
class Outcome:
    """The result a request_id replays: an operation id, or a serialized response."""

    method: str
    principal: str
    request_id: str
    operation_id: str | None = None
    response: bytes | None = None


def replay_values(outcome: Outcome) -> dict[str, Any]:
    """The request record's columns an outcome sets, keyed by column name (statements bind
    them under a prefix of their own, or none)."""
    return {
        "method": outcome.method,
        "principal": outcome.principal,
        "request_id": outcome.request_id,
        "operation_id": outcome.operation_id,
        "response": outcome.response,
    }


def values_of(row: models.Base) -> dict[str, Any]:
    """The column values of a new (never added) object: those set on it, and the column
    defaults of the others, which an INSERT inside a CTE does not apply by itself (server
    defaults it does). Keyed by column name."""
    values: dict[str, Any] = {}
    for attribute in inspect(type(row)).column_attrs:
        column = attribute.columns[0]
        if attribute.key in row.__dict__:
            values[column.name] = row.__dict__[attribute.key]
            continue
        default = column.default
        if not isinstance(default, ColumnDefault):
            continue
        if default.is_callable:
            # SQLAlchemy wraps the callable to take an execution context, which no default
            # of these models reads.
            values[column.name] = default.arg(None)
        else:  # a scalar, or a SQL expression Postgres evaluates
            values[column.name] = default.arg
    return values


def _binds(table: Table, columns: tuple[str, ...], prefix: str) -> list[Any]:
    return [bindparam(prefix + name, type_=table.c[name].type) for name in columns]


@functools.cache
def _statement(
    created: tuple[Table, tuple[str, ...]] | None,
    entry_columns: tuple[str, ...],
    completes: bool,
) -> Select[Any]:
    writes = []
    if created is not None:
        table, columns = created
        writes.append(
            insert(table)
            .from_select(list(columns), select(*_binds(table, columns, "created_")))
            .cte("created")
        )
    audit = models.table_of(models.AuditEntry)
    writes.append(
        insert(audit)
        .from_select(
            list(entry_columns),
            select(*_binds(audit, entry_columns, "entry_")),
        )
        .cte("audited")
    )
    if completes:
        record = models.table_of(models.RequestRecord)
        writes.append(
            sql_update(record)
            .where(
                record.c.method == bindparam("outcome_method"),
                record.c.principal == bindparam("outcome_principal"),
                record.c.request_id == bindparam("outcome_request_id"),
            )
            .values(
                operation_id=bindparam("outcome_operation_id", type_=record.c.operation_id.type),
                response=bindparam("outcome_response", type_=record.c.response.type),
            )
            .cte("completed")
        )
    # Postgres runs every data-modifying CTE to completion, read or not.
    return select(literal(1).label("written")).add_cte(*writes)


async def write(
    executor: driver.AnyConnection,
    *,
    entry: models.AuditEntry,
    outcome: Outcome | None,
    created: models.Base | None = None,
) -> None:
    """Insert `created` (when given) and the audit `entry`, and store the request's `outcome`
    on its request-id record (claimed earlier in the transaction), in one statement."""
    parameters: dict[str, Any] = {}
    shape = None
    if created is not None:
        values = values_of(created)
        shape = (models.table_of(type(created)), tuple(values))
        parameters.update({"created_" + name: value for name, value in values.items()})
    entry_values = values_of(entry)
    parameters.update({"entry_" + name: value for name, value in entry_values.items()})
    if outcome is not None:
        parameters.update({"outcome_" + k: v for k, v in replay_values(outcome).items()})
    statement = _statement(shape, tuple(entry_values), outcome is not None)
    await driver.row(executor, statement, parameters)
