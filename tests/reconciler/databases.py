"""A database of a test module's own, for tests that run their own workers: no other worker
(the package's control plane) may claim their rows or change their timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import databases


@pytest.fixture(scope="module")
def own_database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    """A fresh, migrated database for this module alone; dropped afterwards."""
    with database_server.fresh("linkplane_own") as url:
        yield url
