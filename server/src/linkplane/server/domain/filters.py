"""A documented subset of the AIP-160 filter grammar, parsed into a small syntax tree.

Grammar (AIP-160 precedence: OR binds tighter than AND):

    filter     := and_expr
    and_expr   := or_expr ("AND" or_expr)*
    or_expr    := unary ("OR" unary)*
    unary      := ["NOT" | "-"] primary
    primary    := "(" and_expr ")" | comparison
    comparison := field ("=" | "!=" | "<" | "<=" | ">" | ">=") value
                  (the ordering operators only on fields a kind declares ordered, e.g. time)
    field      := name ("." name)*          e.g. state, labels.team
    value      := "quoted string" | bare-word

Storage compiles the tree into SQL; each resource kind says which fields it allows, so an
unknown field is INVALID_ARGUMENT rather than an empty result.
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from linkplane.server.domain.errors import FieldViolation, InvalidArgument

MAX_FILTER_LENGTH = 2048
# Parentheses and NOT nest the tree; the parser, the SQL compiler and Postgres all recurse
# over it, so its depth is bounded here with a clear error instead of a RecursionError.
MAX_FILTER_DEPTH = 32
# Fields that hold a map: they compare one entry (`labels.team = x`), never the whole map.
MAP_FIELDS = frozenset({"labels"})


@dataclass(frozen=True)
class Comparison:
    field: str
    negated: bool
    value: str
    operator: str = "="  # or "<", "<=", ">", ">=" (`!=` is "=" negated)


@dataclass(frozen=True)
class AllOf:
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    term: Node


Node = Comparison | AllOf | AnyOf | Not

_TOKEN = re.compile(
    r"""\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<op><=|>=|!=|=|<|>)|(?P<string>"(?:[^"\\]|\\.)*")"""
    r"""|(?P<word>[A-Za-z0-9_.:/*@+-]+))"""
)


def parse(
    text: str,
    *,
    fields: Collection[str],
    enums: Mapping[str, Collection[str]] | None = None,
    path: str = "filter",
    ordered: Collection[str] = (),
) -> Node | None:
    """Parse `text`; None for an empty filter. Raises InvalidArgument naming `path`.

    `ordered` fields also accept `<`, `<=`, `>` and `>=`; on the others those are refused.
    """
    if not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise _bad(path, f"at most {MAX_FILTER_LENGTH} characters")
    tokens = _tokenize(text, path)
    parser = _Parser(tokens, path, set(fields), dict(enums or {}))
    node = parser.and_expr()
    if parser.position != len(tokens):
        raise _bad(path, f"unexpected {tokens[parser.position][1]!r}")
    _check_ordering(node, set(ordered), path)
    return node


ORDERING_OPERATORS = frozenset({"<", "<=", ">", ">="})


def _check_ordering(node: Node, ordered: set[str], path: str) -> None:
    if isinstance(node, AllOf | AnyOf):
        for term in node.terms:
            _check_ordering(term, ordered, path)
    elif isinstance(node, Not):
        _check_ordering(node.term, ordered, path)
    elif node.operator in ORDERING_OPERATORS and node.field not in ordered:
        raise _bad(path, f"{node.field} supports only = and !=, not {node.operator}")


def comparator(node: Comparison) -> Callable[[Any, Any], Any]:
    """What `node`'s operator means, as `compare(value, wanted)`: one table for the SQL of a
    List (storage/filtering.py) and the in-memory match of a Watch (api/watches.py), so that a
    watch matches exactly what a List with the same filter returns."""
    return {
        "=": operator.ne if node.negated else operator.eq,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }[node.operator]


def timestamp(node: Comparison, path: str = "filter") -> datetime.datetime:
    """The value of a comparison on a time field, as an aware datetime (RFC 3339 input)."""
    try:
        value = datetime.datetime.fromisoformat(node.value.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise _bad(path, f"{node.field} needs an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z")
    return value


def _bad(path: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(path, description)], reason="INVALID_FILTER")


def _tokenize(text: str, path: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise _bad(path, f"cannot parse near {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(
        self,
        tokens: list[tuple[str, str]],
        path: str,
        fields: set[str],
        enums: dict[str, Collection[str]],
    ) -> None:
        self.tokens = tokens
        self.position = 0
        self.path = path
        self.fields = fields
        self.enums = enums
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _bad(self.path, "ends unexpectedly")
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1] == word:
            self.position += 1
            return True
        return False

    def and_expr(self) -> Node:
        terms = [self.or_expr()]
        while self.keyword("AND"):
            terms.append(self.or_expr())
        return terms[0] if len(terms) == 1 else AllOf(tuple(terms))

    def or_expr(self) -> Node:
        terms = [self.unary()]
        while self.keyword("OR"):
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else AnyOf(tuple(terms))

    def unary(self) -> Node:
        if self.keyword("NOT") or self.keyword("-"):
            return Not(self.primary())
        return self.primary()

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "lparen":
            self.depth += 1
            if self.depth > MAX_FILTER_DEPTH:
                raise _bad(self.path, f"nests parentheses deeper than {MAX_FILTER_DEPTH} levels")
            node = self.and_expr()
            if self.take()[0] != "rparen":
                raise _bad(self.path, "missing ')'")
            self.depth -= 1
            return node
        if kind != "word" or value in {"AND", "OR", "NOT"}:
            raise _bad(self.path, f"expected a field name, got {value!r}")
        field = value
        if field not in self.fields and not (
            field.startswith("labels.") and "labels" in self.fields and len(field) > 7
        ):
            known = ", ".join(sorted(self.fields))
            raise _bad(self.path, f"unknown field {field!r}; filterable fields: {known}")
        if field in MAP_FIELDS:
            raise _bad(self.path, f"{field} is a map: compare one entry, e.g. {field}.team = x")
        op_kind, op = self.take()
        if op_kind != "op":
            raise _bad(self.path, f"expected = or != after {field!r}")
        value_kind, raw = self.take()
        if value_kind == "string":
            literal = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif value_kind == "word":
            literal = raw
        else:
            raise _bad(self.path, f"expected a value after {field} {op}")
        allowed = self.enums.get(field)
        if allowed is not None and literal not in allowed:
            raise _bad(self.path, f"{field} must be one of {', '.join(sorted(allowed))}")
        operator = op if op in ORDERING_OPERATORS else "="
        return Comparison(field=field, negated=op == "!=", value=literal, operator=operator)
