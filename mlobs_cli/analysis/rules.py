"""Check rules: a small tokenizer and recursive-descent parser, and the `[check]` settings table.

`parse_assert("v2.1: p99 < 300ms")`, `parse_require("model_version=99.5%")` and
`parse_regression("p95:10%")` turn rule text into `Rule` values (never `eval`); text that does not
parse raises `RuleSyntaxError` naming the rule and the column, with a caret. Stdlib only.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from mlobs_cli.durations import parse_duration
from mlobs_cli.errors import UsageError

SEVERITIES = ("error", "warn")
OPS = ("<", "<=", ">", ">=")
#: metrics computed on a numeric field (latency_ms by default), one value per model version
STAT_METRICS = ("mean", "max")
#: metrics of the request stream, one value per model version
STREAM_METRICS = ("error_rate", "requests", "rate")
#: metrics of the whole input
INPUT_METRICS = ("skipped",)
KNOWN_METRICS = ("pNN", *STAT_METRICS, *STREAM_METRICS, *INPUT_METRICS, "forecast")
POOLED_SCOPE = "*"

_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d+)?)\Z")
_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<word>[A-Za-z_\u00b5\u03bc][A-Za-z0-9_.\u00b5\u03bc]*)"
    r"|(?P<op><=|>=|==|!=|=<|=>|<|>|=)"
    r"|(?P<punct>[(),%/])"
)


class RuleSyntaxError(UsageError):
    """A rule does not parse: names the rule, where it came from and the column; exit 2."""

    def __init__(self, rule: str, origin: str, pos: int, length: int, reason: str) -> None:
        self.rule = rule
        self.origin = origin
        self.pos = pos
        self.length = max(1, length)
        self.reason = reason
        super().__init__(f"{origin} {rule!r} does not parse at column {pos + 1}: {reason}")

    def caret_lines(self) -> list[str]:
        """The rule and a caret under the offending part, for stderr."""
        text = self.rule.replace("\t", " ")
        return ["  " + text, "  " + " " * self.pos + "^" * self.length]


@dataclass(frozen=True)
class Quantity:
    """A threshold: `value` in the canonical unit (ms, fraction, per second, count), as written."""

    value: float
    unit: str  # "ms", "fraction", "per_s", "count", "number"
    text: str


@dataclass(frozen=True)
class Rule:
    """One parsed rule.

    kind: `stat` (pNN/mean/max of `field`), `stream` (error_rate/requests/rate), `input` (skipped),
    `require` (coverage of `field`), `regression` (change of a stat vs a baseline), `forecast`.
    `scope` is None (one result per model version), a version, or `*` (all versions pooled).
    """

    kind: str
    text: str
    origin: str
    metric: str  # p99, mean, max, error_rate, requests, rate, skipped, or the required field
    op: str = "<"
    threshold: Quantity | None = None
    field: str | None = None  # the numeric field of a stat (latency_ms by default)
    scope: str | None = None
    severity: str = "error"
    horizon: Quantity | None = None  # forecast only
    percentile: float | None = None  # for pNN metrics

    @property
    def display(self) -> str:
        """The rule as reports name it: its text, with `max-regression` before a regression limit."""
        return f"max-regression {self.text}" if self.kind == "regression" else self.text

    @property
    def metric_label(self) -> str:
        """`p95`, `p95(inference_ms)`, `error_rate`..."""
        if self.field and self.field != "latency_ms" and self.kind in ("stat", "regression"):
            return f"{self.metric}({self.field})"
        return self.metric


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, word, op, punct, end
    text: str
    pos: int


def _tokenize(text: str, start: int, end: int, fail: Any) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = start
    while pos < end:
        m = _TOKEN.match(text, pos, end)
        if not m:
            fail(pos, 1, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", "", end))
    return toks


class _Parser:
    """Recursive descent over the tokens of one rule."""

    def __init__(self, text: str, origin: str, start: int = 0, end: int | None = None) -> None:
        self.text = text
        self.origin = origin
        self.toks = _tokenize(text, start, len(text) if end is None else end, self.fail)
        self.i = 0

    def fail(self, pos: int, length: int, reason: str) -> None:
        raise RuleSyntaxError(self.text, self.origin, pos, length, reason)

    def fail_at(self, tok: _Tok, reason: str) -> None:
        self.fail(tok.pos, len(tok.text) or 1, reason)

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.tok.kind in ("punct", "op") and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str) -> None:
        if not self.accept(text):
            self.fail_at(self.tok, f"expected {what}, found {_describe(self.tok)}")

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            self.fail_at(self.tok, f"unexpected {_describe(self.tok)} after the rule")

    # -- grammar -------------------------------------------------------------------------------
    def metric(self) -> dict[str, Any]:
        """metric := WORD [ '(' field ')' ] | 'forecast' '(' metric ',' duration ')'"""
        tok = self.take()
        if tok.kind != "word":
            self.fail_at(tok, f"expected a metric ({_metric_list()}), found {_describe(tok)}")
        name = tok.text
        pm = _PERCENTILE.match(name)
        if pm:
            q = float(pm.group(1))
            if not 0 < q <= 100:
                self.fail_at(tok, f"percentile {pm.group(1)} is outside 0-100")
            return {"kind": "stat", "metric": name, "percentile": q, "field": self.field_arg()}
        if name in STAT_METRICS:
            return {"kind": "stat", "metric": name, "field": self.field_arg()}
        if name in STREAM_METRICS or name in INPUT_METRICS:
            if self.tok.text == "(":
                self.fail_at(self.tok, f"{name} takes no field")
            return {"kind": "stream" if name in STREAM_METRICS else "input", "metric": name}
        if name == "forecast":
            self.expect("(", "'(' after forecast, as in forecast(p99, 6h)")
            inner_tok = self.tok
            inner = self.metric()
            if inner["kind"] != "stat":
                self.fail_at(inner_tok, "forecast applies to pNN, mean or max")
            self.expect(",", "',' and a horizon, as in forecast(p99, 6h)")
            horizon = self.quantity()
            horizon_q = self.as_duration(horizon, "the forecast horizon", allow_zero=False)
            self.expect(")", "')'")
            return {**inner, "kind": "forecast", "horizon": horizon_q}
        close = difflib.get_close_matches(name, [*STAT_METRICS, *STREAM_METRICS, "skipped", "p99"])
        hint = f" (did you mean {close[0]}?)" if close else f" (expected {_metric_list()})"
        self.fail_at(tok, f"unknown metric {name!r}{hint}")
        raise AssertionError  # unreachable

    def field_arg(self) -> str:
        if not self.accept("("):
            return "latency_ms"
        tok = self.take()
        if tok.kind != "word":
            self.fail_at(tok, f"expected a field name, found {_describe(tok)}")
        self.expect(")", "')'")
        return tok.text

    def op(self) -> str:
        tok = self.take()
        if tok.kind != "op" or tok.text not in OPS:
            found = _describe(tok)
            self.fail_at(tok, f"expected a comparison (<, <=, >, >=), found {found}")
        return tok.text

    def quantity(self) -> tuple[_Tok, str, int]:
        """quantity := NUMBER [ '%' | UNIT | '/' UNIT ]; returns (number, unit, end position)."""
        num = self.take()
        if num.kind != "number":
            self.fail_at(num, f"expected a number, found {_describe(num)}")
        unit = ""
        end = num.pos + len(num.text)
        if self.tok.kind == "punct" and self.tok.text == "%":
            end = self.take().pos + 1
            unit = "%"
        elif self.tok.kind == "word":
            u = self.take()
            unit, end = u.text, u.pos + len(u.text)
        elif self.tok.kind == "punct" and self.tok.text == "/":
            self.take()
            u = self.take()
            if u.kind != "word":
                self.fail_at(u, f"expected a time unit after '/' (s, m, h), found {_describe(u)}")
            unit, end = "/" + u.text, u.pos + len(u.text)
        return num, unit, end

    def as_duration(self, q: tuple[_Tok, str, int], what: str, *, allow_zero: bool = True) -> Quantity:
        num, unit, end = q
        text = self.text[num.pos : end]
        if not unit or unit == "%" or unit.startswith("/"):
            self.fail(num.pos, end - num.pos, f"{what} needs a duration unit, e.g. {num.text}ms")
        try:
            ms = parse_duration(text, allow_zero=allow_zero) * 1000.0
        except UsageError as exc:
            self.fail(num.pos, end - num.pos, str(exc))
        return Quantity(ms, "ms", text)


def _describe(tok: _Tok) -> str:
    return "the end of the rule" if tok.kind == "end" else repr(tok.text)


def _metric_list() -> str:
    return "pNN, mean, max, error_rate, requests, rate, skipped"


def _threshold(p: _Parser, m: dict[str, Any], q: tuple[_Tok, str, int]) -> Quantity:
    """Convert the number and unit to the canonical unit of metric `m`, or fail with the reason."""
    num, unit, end = q
    text = p.text[num.pos : end]
    value = float(num.text)
    unit_pos, unit_len = num.pos + len(num.text), max(1, end - num.pos - len(num.text))
    metric = m["metric"]
    if m["kind"] in ("stat", "forecast"):
        fld = m.get("field") or "latency_ms"
        if fld.endswith("_ms"):
            return p.as_duration(q, f"{m['metric']} of {fld}")
        if unit:
            p.fail(unit_pos, unit_len, f"{fld} is compared as a plain number; drop {unit!r}")
        return Quantity(value, "number", text)
    if metric == "error_rate":
        if unit != "%":
            p.fail(num.pos, end - num.pos, f"error_rate needs a percentage, e.g. {num.text}%")
        return Quantity(value / 100.0, "fraction", text)
    if metric == "skipped":
        if unit == "%":
            return Quantity(value / 100.0, "fraction", text)
        if unit:
            p.fail(unit_pos, unit_len, "skipped takes a percentage of lines read (0.1%) or a count")
        return Quantity(value, "count", text)
    if metric == "requests":
        if unit:
            p.fail(unit_pos, unit_len, "requests is a count; drop the unit")
        return Quantity(value, "count", text)
    # rate: per second, from a count per unit of time (5/s, 300/min, 1000/h)
    per_s = None
    if unit.startswith("/") and len(unit) > 1:
        try:
            per_s = parse_duration("1" + unit[1:])
        except UsageError:
            per_s = None
    if per_s is None:
        p.fail(
            num.pos,
            end - num.pos,
            f"rate needs a unit of time, e.g. {num.text}/s or {num.text}/min",
        )
    return Quantity(value / per_s, "per_s", text)


def _split_scope(text: str) -> int | None:
    """Position of the ':' that ends a version scope (outside parentheses and quotes), or None."""
    depth = 0
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ":" and depth == 0:
            return i
    return None


def parse_assert(text: str, *, origin: str = "--assert", severity: str = "error") -> Rule:
    """`[version:] metric op threshold`, e.g. `p99 < 250ms`, `v2.1: p95(inference_ms) < 120ms`."""
    colon = _split_scope(text)
    scope = None
    start = 0
    if colon is not None:
        scope = text[:colon].strip()
        if len(scope) >= 2 and scope[0] == scope[-1] and scope[0] in "\"'":
            scope = scope[1:-1]  # a quoted version: "model:v2": p99 < 1s
        if not scope:
            raise RuleSyntaxError(text, origin, colon, 1, "expected a model version before ':'")
        start = colon + 1
    p = _Parser(text, origin, start)
    if p.tok.kind == "end":
        p.fail(len(text), 1, "empty rule: expected e.g. p99 < 250ms")
    m = p.metric()
    op = p.op()
    q = p.quantity()
    threshold = _threshold(p, m, q)
    p.expect_end()
    if scope is not None and m["kind"] == "input":
        p.fail(0, colon or 1, f"{m['metric']} is a property of the whole input, not of one version")
    return Rule(
        kind=m["kind"],
        text=text.strip(),
        origin=origin,
        metric=m["metric"],
        op=op,
        threshold=threshold,
        field=m.get("field"),
        scope=scope,
        severity=severity,
        horizon=m.get("horizon"),
        percentile=m.get("percentile"),
    )


def parse_require(text: str, *, origin: str = "--require", severity: str = "error") -> Rule:
    """`field` (every request summary carries it) or `field=99.5%` (at least that share does)."""
    p = _Parser(text, origin)
    tok = p.take()
    if tok.kind != "word":
        p.fail_at(tok, f"expected a field name such as model_version, found {_describe(tok)}")
    share = Quantity(1.0, "fraction", "100%")
    if p.tok.kind == "op":
        op_tok = p.take()
        if op_tok.text not in ("=", ">="):
            p.fail_at(op_tok, "expected '=' and a percentage, as in model_version=99.5%")
        num, unit, end = p.quantity()
        if unit != "%":
            p.fail(num.pos, end - num.pos, f"expected a percentage, e.g. {num.text}%")
        value = float(num.text)
        if not 0 <= value <= 100:
            p.fail(num.pos, end - num.pos, "a coverage share is between 0% and 100%")
        share = Quantity(value / 100.0, "fraction", text[num.pos : end])
    p.expect_end()
    return Rule(
        kind="require",
        text=text.strip(),
        origin=origin,
        metric=tok.text,
        op=">=",
        threshold=share,
        field=tok.text,
        severity=severity,
    )


def parse_regression(text: str, *, origin: str = "--max-regression", severity: str = "error") -> Rule:
    """`stat:pct`, e.g. `p95:10%`, `p99(inference_ms):15%`: the largest allowed increase."""
    colon = _split_scope(text)
    if colon is None:
        raise RuleSyntaxError(text, origin, len(text), 1, "expected METRIC:PERCENT, e.g. p95:10%")
    p = _Parser(text, origin, 0, colon)
    m_tok = p.tok
    m = p.metric()
    if m["kind"] != "stat":
        p.fail_at(m_tok, "a regression limit applies to pNN, mean or max, e.g. p95:10%")
    p.expect_end()
    q = _Parser(text, origin, colon + 1)
    num, unit, end = q.quantity()
    if unit != "%":
        q.fail(num.pos, end - num.pos, f"expected a percentage, e.g. {num.text}%")
    q.expect_end()
    limit = Quantity(float(num.text) / 100.0, "fraction", text[num.pos : end])
    return Rule(
        kind="regression",
        text=text.strip(),
        origin=origin,
        metric=m["metric"],
        op="<=",
        threshold=limit,
        field=m.get("field"),
        severity=severity,
        percentile=m.get("percentile"),
    )
