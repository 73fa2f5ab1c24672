"""Page sizes and signed page tokens."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkplane.server.domain import errors, pagination

SECRET = b"s3cret"


def test_page_size_policy():
    assert pagination.page_size(0) == pagination.DEFAULT_PAGE_SIZE
    assert pagination.page_size(5) == 5
    assert pagination.page_size(10**6) == pagination.MAX_PAGE_SIZE
    with pytest.raises(errors.InvalidArgument):
        pagination.page_size(-1)


@given(st.text(max_size=100))
def test_round_trip(after):
    token = pagination.encode(SECRET, ["p", "f"], after)
    assert pagination.decode(SECRET, ["p", "f"], token) == after


def test_tokens_are_bound_and_tamper_evident():
    token = pagination.encode(SECRET, ["p", "f"], "projects/p/services/b")
    with pytest.raises(errors.InvalidArgument, match="different"):
        pagination.decode(SECRET, ["p", "other filter"], token)
    with pytest.raises(errors.InvalidArgument):
        pagination.decode(b"other key", ["p", "f"], token)
    with pytest.raises(errors.InvalidArgument):
        pagination.decode(SECRET, ["p", "f"], token[:-2] + "AA")


@given(st.text(max_size=80))
def test_garbage_tokens_are_invalid_argument(garbage):
    with contextlib.suppress(errors.InvalidArgument):
        pagination.decode(SECRET, ["p"], garbage)
