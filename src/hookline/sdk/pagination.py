"""Cursor pages (``data: {"items": [...], "next_cursor": ...}``) and lazy iterators over them.

A list method returns a pager and sends nothing until it is used:

    for webhook in client.webhooks.list():          # every webhook, page after page
        ...
    page = client.webhooks.list(limit=10).first_page()   # one request: page.items, page.next_cursor
    more = client.webhooks.list(limit=10, cursor=page.next_cursor).first_page()
    for page in client.events.list().pages(): ...

The async pager is the same with ``async for`` and ``await pager.first_page()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hookline.sdk.routes import Call

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # pass as ``cursor=`` for the next page; None on the last


def page_parser(item: Callable[[Any], T]) -> Callable[[Any], Page[T]]:
    def parse(data: Any) -> Page[T]:
        return Page([item(entry) for entry in data["items"]], data.get("next_cursor"))

    return parse


PageCall = Callable[[str | None], Call[Page[T]]]  # the request for the page at a cursor


class Pager(Generic[T]):
    """Iterates over every item from ``cursor`` on, fetching pages as it goes."""

    def __init__(self, run: Callable[[Call[Page[T]]], Page[T]], page_call: PageCall[T], cursor: str | None):
        self._run = run
        self._page_call = page_call
        self._cursor = cursor

    def first_page(self) -> Page[T]:
        return self._run(self._page_call(self._cursor))

    def pages(self) -> Iterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = self._run(self._page_call(cursor))
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items

    def to_list(self) -> list[T]:
        return list(self)


class AsyncPager(Generic[T]):
    """:class:`Pager` for the async client: ``async for item in pager``."""

    def __init__(
        self, run: Callable[[Call[Page[T]]], Awaitable[Page[T]]], page_call: PageCall[T], cursor: str | None
    ):
        self._run = run
        self._page_call = page_call
        self._cursor = cursor

    async def first_page(self) -> Page[T]:
        return await self._run(self._page_call(self._cursor))

    async def pages(self) -> AsyncIterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = await self._run(self._page_call(cursor))
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def to_list(self) -> list[T]:
        return [item async for item in self]
