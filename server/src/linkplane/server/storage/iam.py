"""Project IAM policies in Postgres: read, compare-and-set write, and reverse lookups.

api/iam.py (the google.iam.v1.IAMPolicy servicer) writes policies; api/authz.py reads them to
decide every RPC. A project without a row has the empty policy at revision 0. Writes take the
row lock, so two concurrent SetIamPolicy calls carrying the same etag cannot both win.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import models


@dataclass(frozen=True)
class Binding:
    """One role and the members (`user:{principal}`) holding it."""

    role: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class StoredPolicy:
    """A project's bindings and the revision its etag is derived from (0: never set)."""

    project: str
    bindings: tuple[Binding, ...]
    revision: int


def _bindings(raw: Sequence[object]) -> tuple[Binding, ...]:
    out = []
    for item in raw:
        assert isinstance(item, dict)
        out.append(Binding(role=str(item["role"]), members=tuple(item.get("members", ()))))
    return tuple(out)


async def read(session: AsyncSession, project: str, *, for_update: bool = False) -> StoredPolicy:
    query = select(models.IamPolicy).where(models.IamPolicy.project == project)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        return StoredPolicy(project=project, bindings=(), revision=0)
    return StoredPolicy(project=project, bindings=_bindings(row.bindings), revision=row.revision)


async def lock(session: AsyncSession, project: str) -> StoredPolicy:
    """Read the policy for a write: creates the empty row first so there is a row to lock."""
    await session.execute(
        insert(models.IamPolicy)
        .values(project=project, bindings=[], revision=0)
        .on_conflict_do_nothing()
    )
    return await read(session, project, for_update=True)


async def write(
    session: AsyncSession, project: str, bindings: Sequence[Binding], revision: int
) -> StoredPolicy:
    """Replace the (locked) policy's bindings, recording `revision` as its new revision."""
    row = await session.get(models.IamPolicy, project)
    assert row is not None, "lock() the policy before writing it"
    row.bindings = [{"role": b.role, "members": list(b.members)} for b in bindings]
    row.revision = revision
    row.update_time = func.now()
    await session.flush()
    return StoredPolicy(project=project, bindings=tuple(bindings), revision=revision)


async def projects_granting(
    session: AsyncSession, member: str, roles: Collection[str]
) -> list[str]:
    """The projects whose policy grants `member` any of `roles` (JSONB containment)."""
    if not roles:
        return []
    conditions = [
        models.IamPolicy.bindings.contains([{"role": role, "members": [member]}])
        for role in sorted(roles)
    ]
    query = select(models.IamPolicy.project).where(or_(*conditions))
    return list((await session.execute(query.order_by(models.IamPolicy.project))).scalars())
