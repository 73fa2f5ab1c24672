"""Reconcilers: workers that drive AWS towards the desired state stored in Postgres.

Level-triggered: each pass reads the desired spec from Postgres and the actual state from AWS
and takes the next idempotent step. Work is shared between processes through leases
(`storage.leases`), and every AWS object carries the `linkplane:uid` tag from its creation, so
a crash at any line is recovered by finding the object, never by creating a second one.
"""
