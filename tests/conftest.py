"""The root conftest: registers the test support kit (`tests/support/plugin.py`), whose
fixtures every test gets (a real Postgres database, a real linkplane server on a real port,
`project`, the `reconciler.bug` guard). Shared helpers live in `tests/support/`, not here."""

pytest_plugins = ["tests.support.plugin"]
