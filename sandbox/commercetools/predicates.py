"""Query predicates (https://docs.commercetools.com/api/predicates/query): a tokenizer, a
recursive-descent parser to a small AST, and a compiler from the AST to Python closures.

Closures rather than an AST walker because a scan evaluates one predicate against up to hundreds of
thousands of records; the planner in query.py reads the AST to find index bounds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Literal = str | int | float | bool
Evaluator = Callable[[Any], bool]

MAX_DEPTH = 40  # deeper nesting is rejected instead of risking a RecursionError (a 500)
MAX_LENGTH = 20_000


class PredicateError(ValueError):
    """Any problem with a predicate; the API answers it with 400 InvalidInput."""


# --- AST ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class Nested:
    """`field(sub-predicate)`: the sub-predicate applies to the field's object, or to any element."""

    field: str
    sub: Node


@dataclass(frozen=True)
class Compare:
    field: str
    op: str  # one of = != < > <= >=  (`<>` is normalised to `!=`)
    value: Literal


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class IsDefined:
    field: str
    negated: bool


@dataclass(frozen=True)
class IsEmpty:
    field: str
    negated: bool


@dataclass(frozen=True)
class Contains:
    field: str
    mode: str  # "any" | "all"
    values: tuple[Literal, ...]


Node = And | Or | Not | Nested | Compare | In | IsDefined | IsEmpty | Contains

# --- field typing ---------------------------------------------------------------------------------
# The real API validates literals against the resource schema; these leaf names are typed the same
# way wherever they appear, which covers the fields a sync filters on.
DATETIME_FIELDS = frozenset({"createdAt", "lastModifiedAt", "completedAt", "timestamp", "syncedAt"})
DATE_FIELDS = frozenset({"dateOfBirth"})
NUMBER_FIELDS = frozenset({"version", "sequenceNumber", "resourceVersion", "centAmount", "fractionDigits",
                           "preciseAmount", "quantity", "totalLineItemQuantity"})
BOOLEAN_FIELDS = frozenset({"isEmailVerified", "isPlatformClient"})
_DATETIME_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}T")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalize_datetime(text: str) -> str:
    """Any ISO 8601 date-time (or date) to the stored form `YYYY-MM-DDTHH:MM:SS.mmmZ`, so that
    comparisons can be plain string comparisons."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PredicateError(f"'{text}' is not a valid date-time (expected ISO 8601, e.g. "
                             f"2024-01-01T00:00:00.000Z)") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def _typed(field: str, value: Literal) -> Literal:
    """Check (and normalise) a literal against the field's known type."""
    if field in DATETIME_FIELDS:
        if not isinstance(value, str):
            raise PredicateError(f"field '{field}' is a DateTime but was compared to {json.dumps(value)}")
        return normalize_datetime(value)
    if field in DATE_FIELDS:
        if not isinstance(value, str) or not _DATE_ONLY.match(value):
            raise PredicateError(f"field '{field}' is a Date but was compared to {json.dumps(value)}")
        return value
    if field in NUMBER_FIELDS:
        if isinstance(value, str):
            try:
                return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
            except ValueError as exc:
                raise PredicateError(f"field '{field}' is a Number but was compared to "
                                     f"{json.dumps(value)}") from exc
        if isinstance(value, bool):
            raise PredicateError(f"field '{field}' is a Number but was compared to {json.dumps(value)}")
        return value
    if field in BOOLEAN_FIELDS:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise PredicateError(f"field '{field}' is a Boolean but was compared to {json.dumps(value)}")
        return value
    if isinstance(value, str) and _DATETIME_LIKE.match(value):
        try:
            return normalize_datetime(value)
        except PredicateError:
            return value  # a string that merely starts like a date: compare as text
    return value


# --- tokenizer ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![A-Za-z_])
    | (?P<var>:[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><>|!=|>=|<=|=|<|>)
    | (?P<punct>[(),])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_\-]*)
    )""",
    re.VERBOSE,
)
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "defined", "empty", "contains", "any", "all",
                      "true", "false"})


@dataclass(frozen=True)
class Token:
    kind: str  # string | number | var | op | punct | ident | kw | end
    text: str
    value: Any
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(text)
    while pos < end:
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise PredicateError(f"Syntax error while parsing 'where'. Invalid input "
                                 f"'{text[start:start + 1]}' at position {start + 1}.")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        start = match.start(kind)
        value: Any = raw
        if kind == "string":
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise PredicateError(f"invalid escape in string literal at position {start + 1}") from exc
        elif kind == "number":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif kind == "ident" and raw.lower() in KEYWORDS:
            kind, value = "kw", raw.lower()
        tokens.append(Token(kind, raw, value, start))
        pos = match.end()
    tokens.append(Token("end", "", None, len(text)))
    return tokens


# --- parser ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Sequence[str]]) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.variables = variables
        self.depth = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, expected: str) -> PredicateError:
        tok = self.peek()
        found = "end of input" if tok.kind == "end" else f"'{tok.text}'"
        return PredicateError(f"Syntax error while parsing 'where'. Invalid input {found} at position "
                              f"{tok.pos + 1}, expected {expected}.")

    def is_kw(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "kw" and tok.value == word

    def expect_punct(self, char: str) -> None:
        tok = self.peek()
        if tok.kind != "punct" or tok.text != char:
            raise self.fail(f"'{char}'")
        self.i += 1

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.fail(f"'{word}'")
        self.i += 1

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or end of input")
        return node

    def parse_or(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PredicateError(f"predicate nests deeper than {MAX_DEPTH} levels")
        items = [self.parse_and()]
        while self.is_kw("or"):
            self.i += 1
            items.append(self.parse_and())
        self.depth -= 1
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while self.is_kw("and"):
            self.i += 1
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "kw" and tok.value == "not" and self.peek(1).text == "(":
            self.i += 2
            inner = self.parse_or()
            self.expect_punct(")")
            return Not(inner)
        if tok.kind == "punct" and tok.text == "(":
            self.i += 1
            inner = self.parse_or()
            self.expect_punct(")")
            return inner
        return self.parse_field()

    def parse_field(self) -> Node:
        tok = self.next()
        if tok.kind not in ("ident", "kw") or (tok.kind == "kw" and tok.value in ("and", "or")):
            self.i -= 1
            raise self.fail("a field name, 'not(' or '('")
        name = tok.text
        nxt = self.peek()
        if nxt.kind == "punct" and nxt.text == "(":
            self.i += 1
            sub = self.parse_or()
            self.expect_punct(")")
            return Nested(name, sub)
        if nxt.kind == "op":
            self.i += 1
            op = "!=" if nxt.text == "<>" else nxt.text
            return Compare(name, op, _typed(name, self.parse_scalar()))
        if self.is_kw("in"):
            self.i += 1
            return In(name, self.parse_list(name), False)
        if self.is_kw("not") and self.is_kw("in", 1):
            self.i += 2
            return In(name, self.parse_list(name), True)
        if self.is_kw("is"):
            self.i += 1
            negated = self.is_kw("not")
            if negated:
                self.i += 1
            if self.is_kw("defined"):
                self.i += 1
                return IsDefined(name, negated)
            if self.is_kw("empty"):
                self.i += 1
                return IsEmpty(name, negated)
            raise self.fail("'defined' or 'empty'")
        if self.is_kw("contains"):
            self.i += 1
            mode = "any"
            if self.is_kw("any") or self.is_kw("all"):
                mode = self.next().value
                return Contains(name, mode, self.parse_list(name))
            return Contains(name, mode, (_typed(name, self.parse_scalar()),))
        raise self.fail(f"an operator, '(' or a keyword after field '{name}'")

    def parse_scalar(self) -> Literal:
        values = self.parse_value()
        if len(values) != 1:
            raise PredicateError("an input variable with several values can only be used with 'in' or "
                                 "'contains'")
        return values[0]

    def parse_value(self) -> list[Literal]:
        tok = self.next()
        if tok.kind in ("string", "number"):
            return [tok.value]
        if tok.kind == "kw" and tok.value in ("true", "false"):
            return [tok.value == "true"]
        if tok.kind == "var":
            name = tok.text[1:]
            if name not in self.variables:
                raise PredicateError(f"input variable '{name}' is not defined: pass it as 'var.{name}'")
            return list(self.variables[name])
        self.i -= 1
        raise self.fail("a string, number, boolean or :variable")

    def parse_list(self, field: str) -> tuple[Literal, ...]:
        if self.peek().kind == "var":  # `id in :ids` with a multi-valued input variable
            return tuple(_typed(field, v) for v in self.parse_value())
        self.expect_punct("(")
        values: list[Literal] = []
        values.extend(self.parse_value())
        while self.peek().text == ",":
            self.i += 1
            values.extend(self.parse_value())
        self.expect_punct(")")
        return tuple(_typed(field, v) for v in values)


def parse(text: str, variables: Mapping[str, Sequence[str]] | None = None) -> Node:
    if len(text) > MAX_LENGTH:
        raise PredicateError(f"predicate is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise PredicateError("empty predicate")
    try:
        return _Parser(text, variables or {}).parse()
    except RecursionError as exc:  # belt and braces: MAX_DEPTH should stop this first
        raise PredicateError("predicate nests too deeply") from exc


# --- compiler -------------------------------------------------------------------------------------

_MISSING = object()


def _kind(value: Any) -> int:
    """Comparable kinds: a number never equals a string, a boolean is not a number."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 2
    if isinstance(value, str):
        return 3
    return 0


def _compare_fn(op: str, lit: Literal) -> Callable[[Any], bool]:
    kind = _kind(lit)

    if op == "=":
        def check(v: Any) -> bool:
            return _kind(v) == kind and v == lit
    elif op == "!=":
        def check(v: Any) -> bool:
            return _kind(v) == kind and v != lit
    elif op == "<":
        def check(v: Any) -> bool:
            return _kind(v) == kind and v < lit
    elif op == ">":
        def check(v: Any) -> bool:
            return _kind(v) == kind and v > lit
    elif op == "<=":
        def check(v: Any) -> bool:
            return _kind(v) == kind and v <= lit
    else:
        def check(v: Any) -> bool:
            return _kind(v) == kind and v >= lit
    return check


def _on_field(field: str, check: Callable[[Any], bool]) -> Evaluator:
    """Apply `check` to the field's value; for an array, to any element (`stores(key="eu")`)."""

    def evaluate(obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        value = obj.get(field, _MISSING)
        if value is _MISSING and field == "lowercaseEmail" and isinstance(obj.get("email"), str):
            value = obj["email"].lower()  # queryable but not part of the Customer representation
        if value is _MISSING or value is None:
            return False
        if isinstance(value, list):
            return any(check(v) for v in value)
        return check(value)

    return evaluate


def compile_node(node: Node) -> Evaluator:
    if isinstance(node, And):
        parts = [compile_node(n) for n in node.items]
        return lambda obj: all(p(obj) for p in parts)
    if isinstance(node, Or):
        parts = [compile_node(n) for n in node.items]
        return lambda obj: any(p(obj) for p in parts)
    if isinstance(node, Not):
        inner = compile_node(node.item)
        return lambda obj: not inner(obj)
    if isinstance(node, Nested):
        return _on_field(node.field, compile_node(node.sub))
    if isinstance(node, Compare):
        return _on_field(node.field, _compare_fn(node.op, node.value))
    if isinstance(node, In):
        wanted = {(_kind(v), v) for v in node.values}
        field = node.field
        negated = node.negated

        def in_check(obj: Any) -> bool:
            if not isinstance(obj, dict):
                return False
            value = obj.get(field)
            if value is None and field == "lowercaseEmail" and isinstance(obj.get("email"), str):
                value = obj["email"].lower()
            if value is None:
                return False
            values = value if isinstance(value, list) else [value]
            hit = any((_kind(v), v) in wanted for v in values if _kind(v))
            return not hit if negated else hit

        return in_check
    if isinstance(node, IsDefined):
        field, negated = node.field, node.negated
        return lambda obj: isinstance(obj, dict) and (obj.get(field) is None) == negated
    if isinstance(node, IsEmpty):
        field, negated = node.field, node.negated

        def empty_check(obj: Any) -> bool:
            if not isinstance(obj, dict):
                return False
            value = obj.get(field)
            empty = value is None or (isinstance(value, list | dict | str) and len(value) == 0)
            return not empty if negated else empty

        return empty_check
    # Contains
    field, mode = node.field, node.mode
    wanted_set = {(_kind(v), v) for v in node.values}

    def contains_check(obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        value = obj.get(field)
        if not isinstance(value, list):
            return False
        have = {(_kind(v), v) for v in value if _kind(v)}
        return bool(have & wanted_set) if mode == "any" else wanted_set <= have

    return contains_check


def compile_predicate(text: str, variables: Mapping[str, Sequence[str]] | None = None) -> tuple[Node, Evaluator]:
    node = parse(text, variables)
    return node, compile_node(node)
