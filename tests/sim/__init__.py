"""Tests of linkplane.sim over the real AWS wire protocol (aiobotocore → HTTP → simulator)."""
