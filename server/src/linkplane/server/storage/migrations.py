"""Runs the Alembic migrations in `migrations/` against a database.

The scripts live at the repository's top level (one obvious place for schema history); wheels
carry them as package data under `linkplane/server/_migrations`, and an editable install finds
them in the checkout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config


def script_location() -> Path:
    packaged = Path(__file__).resolve().parents[1] / "_migrations"
    if (packaged / "env.py").exists():
        return packaged
    checkout = Path(__file__).resolve().parents[5] / "migrations"
    if (checkout / "env.py").exists():
        return checkout
    raise FileNotFoundError("linkplane's migrations are missing from this installation")


def alembic_config(url: str) -> Config:
    location = script_location()
    config = Config(str(location / "alembic.ini"))
    config.set_main_option("script_location", str(location))
    # Percent signs in URLs (escaped passwords) would be read as interpolation.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the newest revision (blocking; call from a thread in async code)."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_async(url: str) -> None:
    # env.py runs its own event loop, so it must not run on the caller's.
    await asyncio.to_thread(upgrade, url)
