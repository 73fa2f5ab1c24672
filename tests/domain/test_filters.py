"""The AIP-160 subset parser."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkplane.server.domain import errors, filters

FIELDS = {"state", "region", "labels"}


def parse(text: str) -> filters.Node | None:
    return filters.parse(text, fields=FIELDS, enums={"state": {"ACTIVE", "FAILED"}})


def test_precedence_or_binds_tighter_than_and():
    node = parse("state = ACTIVE AND region = a OR region = b")
    assert node == filters.AllOf(
        (
            filters.Comparison("state", False, "ACTIVE"),
            filters.AnyOf(
                (filters.Comparison("region", False, "a"), filters.Comparison("region", False, "b"))
            ),
        )
    )


def test_quotes_negation_and_labels():
    node = parse('NOT (labels.team != "pay \\"ments\\"")')
    assert node == filters.Not(filters.Comparison("labels.team", True, 'pay "ments"'))
    assert parse("   ") is None


@pytest.mark.parametrize(
    "text",
    ["colour = red", "state = SHINY", "state", "state =", "(state = ACTIVE", "AND", "labels. = x"],
)
def test_bad_filters_name_the_filter_field(text):
    with pytest.raises(errors.InvalidArgument) as caught:
        parse(text)
    assert caught.value.violations[0].field == "filter"


@given(st.text(max_size=60))
def test_any_text_parses_or_is_invalid_argument(text):
    with contextlib.suppress(errors.InvalidArgument):
        parse(text)
