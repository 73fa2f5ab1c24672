"""Iterators over List RPCs that follow `next_page_token` (AIP-158).

`list_*` methods return a pager instead of one page so callers write `async for s in
client.list_services(...)` and never handle tokens; `pages()` is there for callers that want
page boundaries (progressive rendering, resuming with `next_page_token`). Pagers are lazy: no RPC
is made until iteration starts, and each page is fetched only when the previous is used up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["AsyncPager", "Page", "Pager"]

ItemT = TypeVar("ItemT")


@dataclasses.dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of a List response."""

    items: list[ItemT]
    """The page's items, in server order."""

    next_page_token: str
    """Token for the page after this one; empty on the last page."""


class AsyncPager(Generic[ItemT]):
    """All items of a List RPC, across pages, as an async iterator."""

    def __init__(
        self, fetch: Callable[[str], Awaitable[Page[ItemT]]], *, page_token: str = ""
    ) -> None:
        self._fetch = fetch
        self._page_token = page_token

    async def pages(self) -> AsyncIterator[Page[ItemT]]:
        """Iterate page by page, starting at the pager's `page_token`."""
        token = self._page_token
        while True:
            page = await self._fetch(token)
            yield page
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def _items(self) -> AsyncIterator[ItemT]:
        async for page in self.pages():
            for item in page.items:
                yield item

    def __aiter__(self) -> AsyncIterator[ItemT]:
        return self._items()

    async def collect(self, limit: int | None = None) -> list[ItemT]:
        """All items (at most `limit`) as a list; stops fetching pages once `limit` is reached."""
        items: list[ItemT] = []
        async for item in self:
            if limit is not None and len(items) >= limit:
                break
            items.append(item)
        return items


class Pager(Generic[ItemT]):
    """All items of a List RPC, across pages, as a blocking iterator."""

    def __init__(self, fetch: Callable[[str], Page[ItemT]], *, page_token: str = "") -> None:
        self._fetch = fetch
        self._page_token = page_token

    def pages(self) -> Iterator[Page[ItemT]]:
        """Iterate page by page, starting at the pager's `page_token`."""
        token = self._page_token
        while True:
            page = self._fetch(token)
            yield page
            if not page.next_page_token:
                return
            token = page.next_page_token

    def __iter__(self) -> Iterator[ItemT]:
        for page in self.pages():
            yield from page.items

    def collect(self, limit: int | None = None) -> list[ItemT]:
        """All items (at most `limit`) as a list; stops fetching pages once `limit` is reached."""
        items: list[ItemT] = []
        for item in self:
            if limit is not None and len(items) >= limit:
                break
            items.append(item)
        return items
