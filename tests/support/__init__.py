"""The test support kit: fixtures and helpers that more than one test package needs.

`plugin` is registered by the root conftest (`pytest_plugins`) and provides what every test
gets (the session database, an API server, `project`, the `reconciler.bug` guard, linkplane's log
configuration). The other modules are plain helpers that a package's conftest turns into
fixtures of the scope it needs: `databases` (fresh migrated databases), `simulator` (the AWS
simulator and its seeded networks), `runtimes` (a linkplane server in-process and a channel to
it), `api` (stubs, polling, error details) and `specs` (Service and Connection builders).
Tests import helpers from here, never from another package's conftest.
"""
