"""Converted Service and Connection messages, cached by (uid, revision, row version).

Decoding a row's JSON spec and status and building its protobuf message is most of the CPU
of a Get or a List page. Settled resources are read far more often than they change, so the
message is kept in a bounded LRU keyed by the first three values of a storage/reads.py row:
the resource's uid, its revision, and the row version (Postgres's xmin, which every UPDATE
changes: a status write that does not bump the revision is never answered from a stale
entry). Cached messages are shared: callers must not modify them (a List response copies them
into its repeated field).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from google.protobuf.message import Message

from linkplane.server.protocol import converters

MAX_ENTRIES = 8192


class _Row:
    """A row's values by attribute, with the JSON documents decoded, for the converters."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class MessageCache:
    """A bounded LRU of messages converted from rows by `convert`."""

    def __init__(self, convert: Callable[[Any], Message], max_entries: int = MAX_ENTRIES) -> None:
        self.convert = convert
        self.max_entries = max_entries
        self.entries: OrderedDict[Hashable, Message] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, row: Any) -> Message:
        """The message of a storage/reads.py row (uid, revision, version, then the message
        columns with the JSON documents as text)."""
        key = (row[0], row[1], row[2])
        message = self.entries.get(key)
        if message is not None:
            self.hits += 1
            self.entries.move_to_end(key)
            return message
        self.misses += 1
        # A SQLAlchemy Row (storage/reads.py's pages) or an asyncpg Record (its Get).
        values = dict(getattr(row, "_mapping", row))
        values["spec"] = json.loads(values["spec"])
        values["status"] = json.loads(values["status"] or "null") or {}
        message = self.convert(_Row(values))
        self.entries[key] = message
        if len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return message


# One per process: the API's Get, List and Watch of each kind share them.
services = MessageCache(converters.service)
connections = MessageCache(converters.connection)
