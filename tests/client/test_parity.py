"""The asyncio and blocking client flavours stay twins (issue 12).

`aio.py` and `sync.py` (and the operation, pager and watch handles each returns) are maintained
by hand, so nothing else stops a method or a parameter from being added to one and forgotten in
the other. This compares the public surface of each pair with `inspect`: the same names, the
same parameters (names, kinds, defaults, annotations) and return types that differ only by the
`Async` prefix of the handle types; the blocking twin of a coroutine is a plain function.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from linkplane.client import AsyncClient, Client, operations, pagers, watches

PAIRS: list[tuple[type[Any], type[Any]]] = [
    (AsyncClient, Client),
    (operations.AsyncOperation, operations.Operation),
    (pagers.AsyncPager, pagers.Pager),
    (watches.AsyncWatch, watches.Watch),
]

# Public names whose asyncio spelling differs by convention.
RENAMED = {"aclose": "close"}

_ASYNC_PREFIX = re.compile(r"\bAsync(?=[A-Z])")


def _public(cls: type[Any], renames: dict[str, str]) -> dict[str, Any]:
    return {
        renames.get(name, name): inspect.getattr_static(cls, name)
        for name in dir(cls)
        if not name.startswith("_")
    }


def _signature(member: Any) -> str:
    """The signature with `AsyncOperation`/`AsyncPager`/`AsyncWatch` read as their twins."""
    function = member.fget if isinstance(member, property) else member
    if isinstance(function, staticmethod | classmethod):
        function = function.__func__
    return _ASYNC_PREFIX.sub("", str(inspect.signature(function)))


def _kind(member: Any) -> str:
    if isinstance(member, property):
        return "property"
    if isinstance(member, staticmethod | classmethod):
        return type(member).__name__
    return "method" if callable(member) else "attribute"


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=[s.__name__ for _, s in PAIRS])
def test_same_public_names(async_cls: type[Any], sync_cls: type[Any]) -> None:
    async_names = set(_public(async_cls, RENAMED))
    sync_names = set(_public(sync_cls, {}))
    assert sorted(async_names - sync_names) == [], f"only in {async_cls.__name__}"
    assert sorted(sync_names - async_names) == [], f"only in {sync_cls.__name__}"


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=[s.__name__ for _, s in PAIRS])
def test_same_signatures_and_kinds(async_cls: type[Any], sync_cls: type[Any]) -> None:
    async_members = _public(async_cls, RENAMED)
    sync_members = _public(sync_cls, {})
    mismatches: list[str] = []
    for name in sorted(set(async_members) & set(sync_members)):
        a, s = async_members[name], sync_members[name]
        if _kind(a) != _kind(s):
            mismatches.append(f"{name}: {_kind(a)} vs {_kind(s)}")
        elif _kind(a) != "attribute" and _signature(a) != _signature(s):
            mismatches.append(f"{name}: {_signature(a)} vs {_signature(s)}")
        elif _kind(s) == "method" and inspect.iscoroutinefunction(s):
            mismatches.append(f"{name}: the blocking twin is a coroutine function")
    assert mismatches == []


def test_signature_normalisation_only_strips_the_async_prefix_of_types() -> None:
    # The comparison must still tell a real difference apart (else the tests above pass always).
    def a(*, name: str, timeout: float | None = None) -> AsyncClient: ...

    def b(*, name: str, timeout: float | None = None) -> Client: ...

    def c(*, name: str, timeout: float = 1.0) -> Client: ...

    assert _signature(a) == _signature(b)
    assert _signature(a) != _signature(c)
