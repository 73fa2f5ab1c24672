"""Postgres storage: the ORM models, the engine, and one module of queries per resource kind.

Query functions take an `AsyncSession` and never commit: the caller (one RPC, or one reconcile
step) owns the transaction, so a request's writes, its audit entry and its operation land
together or not at all.
"""
