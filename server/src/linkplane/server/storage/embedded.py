"""An embedded, real Postgres for `linkplane-server dev` and for tests without a server.

pgserver ships Postgres binaries inside a wheel, so a fresh machine with only Python runs
linkplane against the same database engine as production, not SQLite or a fake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pgserver


class EmbeddedPostgres:
    """A Postgres cluster under `data_dir`, started on demand and stopped on close."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the cluster and return an asyncpg URL for it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(  # type: ignore[attr-defined]
            str(self.data_dir.resolve()), cleanup_mode="stop"
        )
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
