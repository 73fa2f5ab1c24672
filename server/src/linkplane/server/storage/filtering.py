"""Compiles a parsed AIP-160 filter (`domain.filters`) into a SQLAlchemy condition, and names
the columns each resource's List and Watch filter on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Select, String, and_, false, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from linkplane.server.domain import errors, filters
from linkplane.server.storage import models

T = TypeVar("T")


def account_columns() -> dict[str, Any]:
    """The columns ListAccounts filters on, by filter field name."""
    return {
        "display_name": models.Account.display_name,
        "aws_account_id": models.Account.aws_account_id,
        "labels": models.Account.labels,
    }


def service_columns() -> dict[str, Any]:
    """The columns ListServices and WatchServices filter on, by filter field name."""
    return {
        "state": models.Service.state,
        "region": models.Service.region,
        "provider_account": models.Service.provider_account,
        "display_name": models.Service.display_name,
        "labels": models.Service.labels,
        "service_name": models.Service.service_name,
    }


def connection_columns() -> dict[str, Any]:
    """The columns ListConnections and WatchConnections filter on, by filter field name."""
    m = models.Connection
    return {
        "state": m.state,
        "region": m.region,
        "consumer_account": m.consumer_account,
        "service": m.service,
        "service_name": m.service_name,
        "vpc_id": m.vpc_id,
        "display_name": m.display_name,
        "labels": m.labels,
        "endpoint_id": m.endpoint_id,
    }


def compile_filter(
    node: filters.Node | None, columns: Mapping[str, Any]
) -> ColumnElement[bool] | None:
    """`columns` maps filter field names to columns; `labels` must map to the JSONB column."""
    if node is None:
        return None
    return _compile(node, columns)


def narrowed(query: Select[T], node: filters.Node | None, columns: Mapping[str, Any]) -> Select[T]:
    """`query` with the filter's condition added; unchanged without a filter."""
    condition = compile_filter(node, columns)
    return query if condition is None else query.where(condition)


def _compile(node: filters.Node, columns: Mapping[str, Any]) -> ColumnElement[bool]:
    if isinstance(node, filters.AllOf):
        return and_(*(_compile(t, columns) for t in node.terms))
    if isinstance(node, filters.AnyOf):
        return or_(*(_compile(t, columns) for t in node.terms))
    if isinstance(node, filters.Not):
        return not_(_compile(node.term, columns))
    if node.field.startswith("labels."):
        column = columns["labels"][node.field.removeprefix("labels.")].astext
        # A missing label compares as "": `labels.team != "x"` includes unlabelled rows.
        condition: ColumnElement[bool] = column.is_not_distinct_from(node.value)
        if node.value == "":
            condition = or_(column.is_(None), column == "")
        return not_(condition) if node.negated else condition
    column = columns.get(node.field)
    if column is None:
        return false()
    if node.operator in filters.ORDERING_OPERATORS or isinstance(column.type, sqlalchemy.DateTime):
        return _ordered(node, column)
    if not isinstance(column.type, String):
        # Filter values are strings; comparing one with a JSONB or numeric column is a type
        # error in Postgres, so it is the caller's error here.
        raise errors.InvalidArgument(
            [errors.FieldViolation("filter", f"{node.field} cannot be compared with a value")],
            reason="INVALID_FILTER",
        )
    result: ColumnElement[bool] = column != node.value if node.negated else column == node.value
    return result


def _ordered(node: filters.Comparison, column: Any) -> ColumnElement[bool]:
    """`=`, `!=`, `<`, `<=`, `>`, `>=` on an ordered column; time values are RFC 3339."""
    value: Any = node.value
    if isinstance(column.type, sqlalchemy.DateTime):
        value = filters.timestamp(node)
    result: ColumnElement[bool] = filters.comparator(node)(column, value)
    return result
