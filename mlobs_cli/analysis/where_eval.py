"""Evaluate a parsed `--where` expression on a frame as vectorized pandas operations.

Typing rules: numbers compare numerically (object columns are coerced, non-numbers never match);
strings compare with the text of a value; `ts`-like datetime columns take ISO-8601 strings (UTC when
no zone is given); `== null` / `!= null` test presence. A missing value matches no other comparison,
so `status != 200` keeps only requests that logged a status.
"""

from __future__ import annotations

import operator
import re
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.analysis.where import (
    _FLIP,
    BoolOp,
    Compare,
    Field,
    InList,
    Literal,
    Match,
    Node,
    Not,
    Truthy,
    Where,
    caret_error,
    unknown_field_error,
)

_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(where: Where, frame: pd.DataFrame) -> pd.Series:
    """The boolean mask of `where` over `frame` (index preserved)."""
    known = [str(c) for c in frame.columns]
    for node_field in _fields_with_pos(where.root):
        if node_field.name not in frame.columns:
            raise unknown_field_error(where, node_field.name, node_field.pos, known)
    result = _eval(where, where.root, frame)
    if isinstance(result, pd.Series):
        return result.astype(bool)
    return pd.Series(bool(result), index=frame.index)


def _fields_with_pos(node: Node) -> list[Field]:
    if isinstance(node, BoolOp):
        return [f for item in node.items for f in _fields_with_pos(item)]
    if isinstance(node, Not):
        return _fields_with_pos(node.item)
    if isinstance(node, Truthy):
        return [node.operand]
    operands = (node.left, node.right) if isinstance(node, Compare) else (node.operand,)
    return [o for o in operands if isinstance(o, Field)]


def _eval(where: Where, node: Node, frame: pd.DataFrame) -> pd.Series | bool:
    if isinstance(node, BoolOp):
        parts = [_eval(where, item, frame) for item in node.items]
        acc = parts[0]
        for part in parts[1:]:
            acc = (acc & part) if node.op == "and" else (acc | part)
        return acc
    if isinstance(node, Not):
        inner = _eval(where, node.item, frame)
        return ~inner if isinstance(inner, pd.Series) else not inner
    if isinstance(node, Truthy):
        col = frame[node.operand.name]
        if pd.api.types.is_bool_dtype(col.dtype):
            return col.fillna(False).astype(bool)
        raise caret_error(
            where.text,
            node.operand.pos,
            f"field {node.operand.name!r} is not true/false",
            f"compare it, e.g. {node.operand.name} != null",
        )
    if isinstance(node, Compare):
        return _compare(where, node, frame)
    if isinstance(node, InList):
        return _in_list(where, node, frame)
    return _match(where, node, frame)


def _kind(col: pd.Series) -> str:
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "time"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    return "text"  # object, string, category


def _as_text(col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    return col.astype("string")


def _coerce_literal(where: Where, lit: Literal, kind: str, name: str) -> Any:
    """The literal converted to the column's kind, or raise a caret error."""
    value = lit.value
    if kind == "number":
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise caret_error(
                    where.text, lit.pos, f"{name} holds numbers; {value!r} is not one"
                ) from None
        return value
    if kind == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise caret_error(where.text, lit.pos, f"{name} is true/false; compare it with true/false")
    if kind == "time":
        if not isinstance(value, str):
            raise caret_error(
                where.text,
                lit.pos,
                f"{name} is a time; compare it with a quoted ISO-8601 time",
                f'e.g. {name} >= "2026-11-26T10:00:00Z"',
            )
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise caret_error(where.text, lit.pos, f"{value!r} is not an ISO-8601 time") from None
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return value


def _operand(where: Where, operand: Field | Literal, frame: pd.DataFrame) -> Any:
    return frame[operand.name] if isinstance(operand, Field) else operand.value


def _compare(where: Where, node: Compare, frame: pd.DataFrame) -> pd.Series | bool:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, Literal) and isinstance(right, Field):
        left, right, op = right, left, _FLIP[op]
    if isinstance(left, Literal) and isinstance(right, Literal):
        try:
            return bool(_OPS[op](left.value, right.value))
        except TypeError:
            return False
    assert isinstance(left, Field)
    col = frame[left.name]
    if isinstance(right, Literal) and right.value is None:
        if op not in ("==", "!="):
            raise caret_error(where.text, node.pos, "null only compares with == or !=")
        return col.isna() if op == "==" else col.notna()
    if isinstance(right, Field):
        return _compare_columns(where, node, col, frame[right.name], op)
    kind = _kind(col)
    value = _coerce_literal(where, right, kind, left.name)
    if kind == "text":
        if isinstance(value, bool) or not isinstance(value, str):
            numbers = pd.to_numeric(col.astype(object), errors="coerce")
            return _OPS[op](numbers, float(value)).fillna(False).astype(bool) & numbers.notna()
        text = _as_text(col)
        return _OPS[op](text, value).fillna(False).astype(bool) & text.notna()
    result = _OPS[op](col, value)
    return pd.Series(result, index=col.index).fillna(False).astype(bool) & col.notna()


def _compare_columns(where: Where, node: Compare, a: pd.Series, b: pd.Series, op: str) -> pd.Series:
    ka, kb = _kind(a), _kind(b)
    if ka == kb == "text":
        a, b = _as_text(a), _as_text(b)
    elif {ka, kb} == {"number", "text"}:
        a = pd.to_numeric(a.astype(object), errors="coerce") if ka == "text" else a
        b = pd.to_numeric(b.astype(object), errors="coerce") if kb == "text" else b
    elif ka != kb and {ka, kb} != {"number", "bool"}:
        raise caret_error(where.text, node.pos, f"cannot compare a {ka} field with a {kb} field")
    result = pd.Series(_OPS[op](a, b), index=a.index)
    return result.fillna(False).astype(bool) & a.notna() & b.notna()


def _in_list(where: Where, node: InList, frame: pd.DataFrame) -> pd.Series | bool:
    if isinstance(node.operand, Literal):
        hit = any(v.value == node.operand.value for v in node.values)
        return hit != node.negate
    col = frame[node.operand.name]
    kind = _kind(col)
    want_null = any(v.value is None for v in node.values)
    values = [v for v in node.values if v.value is not None]
    mask = pd.Series(False, index=col.index)
    if kind == "text":
        strings = [v.value for v in values if isinstance(v.value, str)]
        numbers = [float(v.value) for v in values if not isinstance(v.value, str)]
        if strings:
            mask |= _as_text(col).isin(strings).fillna(False).astype(bool)
        if numbers:
            mask |= pd.to_numeric(col.astype(object), errors="coerce").isin(numbers)
    elif values:
        coerced = [_coerce_literal(where, v, kind, node.operand.name) for v in values]
        mask |= col.isin(coerced).fillna(False).astype(bool)
    if want_null:
        mask |= col.isna()
    return (~mask & col.notna()) if node.negate else mask


def _match(where: Where, node: Match, frame: pd.DataFrame) -> pd.Series | bool:
    pattern = str(node.pattern.value)
    if isinstance(node.operand, Literal):
        text = str(node.operand.value)
        hit = re.search(pattern, text) is not None if node.regex else pattern in text
        return hit != node.negate
    text = _as_text(frame[node.operand.name])
    found = text.str.contains(pattern, regex=node.regex).fillna(False).astype(bool)
    result = (~found if node.negate else found) & text.notna()
    return pd.Series(np.asarray(result, dtype=bool), index=text.index)
