"""`--where`: a small, safe filter language over request fields, evaluated as a vectorized mask.

    status >= 500 and model_version in ("v2.1", "v2.2")
    not error and latency_ms > 250ms or http.route ~ "^/predict"

`parse_where(text)` tokenizes and parses (recursive descent, never `eval`) into an AST;
`.mask(frame)` returns a boolean Series (evaluated in `where_eval`). Syntax errors, unknown fields
raise `UsageError` with the expression and a caret under the offending position. Missing values
match no comparison (test them with `== null`). Operators: == != < <= > >= in, not in, ~ !~
(regex), contains, is [not] null, and or not (also && || !), parentheses; `250ms`/`0.3s` are ms.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlobs_cli.durations import parse_latency_ms
from mlobs_cli.errors import UsageError
from mlobs_cli.terminal import inert_text

if TYPE_CHECKING:
    import pandas as pd

KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", "none", "contains", "is"}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?P<unit>[A-Za-zµμ]+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<quoted>`[^`]*`)
  | (?P<ident>[A-Za-z_@$][A-Za-z0-9_.@$:/-]*)
  | (?P<op>==|!=|<=|>=|!~|&&|\|\||[<>=~!(),])
    """,
    re.VERBOSE,
)
_OP_ALIASES = {"=": "==", "&&": "and", "||": "or", "!": "not"}
_FLIP = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}
EXAMPLES = 'e.g. status >= 500 and model_version in ("v2.0", "v2.1")'


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, ident, op, kw, end
    value: Any
    pos: int
    text: str


def caret_error(text: str, pos: int, what: str, hint: str | None = None) -> UsageError:
    """A UsageError whose message shows `text` with a caret under `pos` (multi-line)."""
    shown = inert_text(text).replace("\t", " ")
    offset = len(inert_text(text[:pos]))
    lines = [f"invalid --where expression: {what}", f"  {shown}", "  " + " " * offset + "^"]
    if hint:
        lines.append(f"  {hint}")
    return UsageError("\n".join(lines))


def _unescape(body: str) -> str:
    return re.sub(
        r"\\(u[0-9a-fA-F]{4}|.)",
        lambda m: (
            chr(int(m.group(1)[1:], 16))
            if len(m.group(1)) == 5
            else _ESCAPES.get(m.group(1), "\\" + m.group(1))
        ),
        body,
    )


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; raise a caret error at the first character fitting none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise caret_error(text, pos, "unterminated string", "close it with " + ch)
            if ch == "`":
                raise caret_error(text, pos, "unterminated `quoted field`")
            raise caret_error(text, pos, f"unexpected character {ch!r}", EXAMPLES)
        raw = m.group(0)
        if m.group("ws"):
            pos = m.end()
            continue
        if m.group("number") is not None:
            kind = "number"
            if m.group("unit"):
                try:
                    value: Any = parse_latency_ms(raw.lstrip("-"))
                except UsageError:
                    raise caret_error(
                        text, pos, f"unknown unit in {raw!r}", "units: us, ms, s, m (as ms)"
                    ) from None
                value = -value if raw.startswith("-") else value
            else:
                value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif m.group("string") is not None:
            kind, value = "string", _unescape(raw[1:-1])
        elif m.group("quoted") is not None:
            kind, value = "ident", raw[1:-1]
        elif m.group("ident") is not None:
            low = raw.lower()
            kind, value = ("kw", low) if low in KEYWORDS else ("ident", raw)
        else:
            op = _OP_ALIASES.get(raw, raw)
            kind, value = ("kw", op) if op in ("and", "or", "not") else ("op", op)
        tokens.append(Token(kind, value, pos, raw))
        pos = m.end()
    tokens.append(Token("end", None, len(text), ""))
    return tokens


# ---- AST ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    value: Any  # int, float, str, bool or None
    pos: int


@dataclass(frozen=True)
class Compare:
    left: Field | Literal
    op: str
    right: Field | Literal
    pos: int


@dataclass(frozen=True)
class InList:
    operand: Field | Literal
    values: tuple[Literal, ...]
    negate: bool


@dataclass(frozen=True)
class Match:
    operand: Field | Literal
    pattern: Literal
    regex: bool
    negate: bool


@dataclass(frozen=True)
class Truthy:
    operand: Field


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    items: tuple[Node, ...]


Node = Compare | InList | Match | Truthy | Not | BoolOp


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.value in words

    def fail(self, what: str, hint: str | None = None) -> UsageError:
        found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
        return caret_error(self.text, self.tok.pos, f"{what}, found {found}", hint)

    def at_op(self, value: str) -> bool:
        return self.tok.kind == "op" and self.tok.value == value

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise caret_error(self.text, 0, "empty expression", EXAMPLES)
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.fail("expected 'and', 'or' or the end of the expression")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_kw("or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_kw("and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def parse_not(self) -> Node:
        if self.is_kw("not"):
            self.take()
            return Not(self.parse_not())
        if self.at_op("("):
            self.take()
            node = self.parse_or()
            if not (self.at_op(")")):
                raise self.fail("expected ')'")
            self.take()
            return node
        return self.parse_comparison()

    def parse_operand(self) -> Field | Literal:
        tok = self.tok
        if tok.kind == "ident":
            self.take()
            return Field(tok.value, tok.pos)
        if tok.kind in ("number", "string"):
            self.take()
            return Literal(tok.value, tok.pos)
        if tok.kind == "kw" and tok.value in ("true", "false", "null", "none"):
            self.take()
            return Literal({"true": True, "false": False}.get(tok.value), tok.pos)
        raise self.fail("expected a field or a value", EXAMPLES)

    def parse_list(self) -> tuple[Literal, ...]:
        if not (self.at_op("(")):
            raise self.fail("expected '(' to start a list", 'e.g. user_id in ("a", "b")')
        self.take()
        values: list[Literal] = []
        while True:
            operand = self.parse_operand()
            if isinstance(operand, Field):
                raise caret_error(
                    self.text,
                    operand.pos,
                    f"a list holds values, not the field {operand.name!r}",
                    f'quote strings: "{operand.name}"',
                )
            values.append(operand)
            if self.at_op(","):
                self.take()
                if self.at_op(")"):
                    break  # trailing comma
                continue
            break
        if not (self.at_op(")")):
            raise self.fail("expected ',' or ')' in the list")
        self.take()
        return tuple(values)

    def parse_comparison(self) -> Node:
        left = self.parse_operand()
        tok = self.tok
        if tok.kind == "op" and tok.value in _FLIP:
            self.take()
            return Compare(left, tok.value, self.parse_operand(), tok.pos)
        if tok.kind == "op" and tok.value in ("~", "!~"):
            self.take()
            return Match(left, self._pattern(), True, tok.value == "!~")
        if self.is_kw("contains"):
            self.take()
            return Match(left, self._pattern(), False, False)
        if self.is_kw("in"):
            self.take()
            return InList(left, self.parse_list(), False)
        if self.is_kw("not"):
            self.take()
            if self.is_kw("in"):
                self.take()
                return InList(left, self.parse_list(), True)
            if self.is_kw("contains"):
                self.take()
                return Match(left, self._pattern(), False, True)
            raise self.fail("expected 'in' or 'contains' after 'not'")
        if self.is_kw("is"):
            self.take()
            negate = False
            if self.is_kw("not"):
                self.take()
                negate = True
            if not self.is_kw("null", "none"):
                raise self.fail("expected null after 'is'")
            null = Literal(None, self.take().pos)
            return Compare(left, "!=" if negate else "==", null, tok.pos)
        if isinstance(left, Field):
            return Truthy(left)
        raise self.fail("expected a comparison operator (== != < <= > >= in ~ contains)")

    def _pattern(self) -> Literal:
        if self.tok.kind != "string":
            raise self.fail("expected a quoted pattern", 'e.g. http.route ~ "^/predict"')
        tok = self.take()
        try:
            re.compile(tok.value)
        except re.error as exc:
            raise caret_error(self.text, tok.pos, f"invalid regular expression: {exc}") from None
        return Literal(tok.value, tok.pos)


@dataclass
class Where:
    """A parsed `--where` expression."""

    text: str
    root: Node
    fields: list[str] = field(default_factory=list)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """A boolean Series over `frame`'s rows (missing values never match a comparison)."""
        from mlobs_cli.analysis.where_eval import evaluate

        return evaluate(self, frame)


def _collect_fields(node: Node, out: list[str]) -> None:
    if isinstance(node, BoolOp):
        for item in node.items:
            _collect_fields(item, out)
    elif isinstance(node, Not):
        _collect_fields(node.item, out)
    elif isinstance(node, Truthy):
        out.append(node.operand.name)
    else:
        operands = (node.left, node.right) if isinstance(node, Compare) else (node.operand,)
        out.extend(o.name for o in operands if isinstance(o, Field))


def parse_where(text: str) -> Where:
    """Parse a `--where` expression; raise UsageError (with a caret) on a syntax error."""
    root = _Parser(text).parse()
    names: list[str] = []
    _collect_fields(root, names)
    return Where(text, root, list(dict.fromkeys(names)))


def unknown_field_error(where: Where, name: str, pos: int, known: list[str]) -> UsageError:
    """The error for a field the frame does not have: caret, close matches, the known fields."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    if not close and re.match(r"^v?\d", name):
        hint = f'to compare with the text {name}, quote it: "{name}". '
    return caret_error(where.text, pos, f"unknown field {name!r}", f"{hint}known fields: {', '.join(known)}")
