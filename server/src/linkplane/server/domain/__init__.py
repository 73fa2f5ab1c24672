"""The domain: resource specs, validation, policies and state machines.

Pure Python: no gRPC, SQLAlchemy or AWS SDK imports (import-linter enforces it), so every rule
here is unit-testable without a server, a database or a simulator.
"""
