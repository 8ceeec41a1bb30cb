"""Templated filters (`filter_params`) expanded into literal expression text.

pymilvus sends `filter="grp in {gs}"` with `expr_template_values={"gs": [1, 2]}`; Milvus
2.3 has no templates and refuses the placeholder. The router substitutes each
`{name}` outside string literals with the value's literal text, so every backend gets
an ordinary expression. A template it cannot write as text (bytes, NaN, a JSON object,
a name with no value) is forwarded untouched: the backend answers as it would. JSON
nested deeper than Python's parser follows gets a parameter error. String values are
quoted with `\n` and `\r` escaped, so no raw line break reaches Milvus's lexer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pymilvus.grpc_gen import schema_pb2

from mishards.router import limits
from mishards.router.literals import quote

_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class NotExpressible(ValueError):
    """A template value with no literal form in a Milvus expression."""


def literal(value: Any) -> str:
    """A Python scalar or list as Milvus expression text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotExpressible(f"{value} has no literal form")
        return repr(value)
    if isinstance(value, str):
        return quote(value)  # a raw carriage return would end the literal in both lexers
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise NotExpressible(f"{type(value).__name__} has no literal form")


def _array(arr: schema_pb2.TemplateArrayValue) -> list[Any]:
    kind = arr.WhichOneof("data")
    if kind is None:
        return []
    if kind == "array_data":
        return [_array(a) for a in arr.array_data.data]
    if kind == "json_data":
        try:
            return [json.loads(b) for b in arr.json_data.data]
        except RecursionError:  # nested past what the parser follows: refused, never a traceback
            raise limits.too_deep() from None
    return list(getattr(arr, kind).data)


def value_of(tv: schema_pb2.TemplateValue) -> Any:
    kind = tv.WhichOneof("val")
    if kind == "array_val":
        return _array(tv.array_val)
    if kind in (None, "bytes_val"):
        raise NotExpressible(f"template value of kind {kind}")
    return getattr(tv, kind)


def expand(expr: str, values: Any) -> str:
    """`expr` with each `{name}` outside string literals replaced by its value's literal."""
    texts = {name: literal(value_of(tv)) for name, tv in values.items()}
    out: list[str] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'":  # copy a string literal unchanged, escapes included
            j = i + 1
            while j < len(expr) and expr[j] != ch:
                j += 2 if expr[j] == "\\" else 1
            out.append(expr[i : j + 1])
            i = j + 1
            continue
        match = _PLACEHOLDER.match(expr, i) if ch == "{" else None
        if match:
            if match.group(1) not in texts:
                raise NotExpressible(f"no value for {{{match.group(1)}}}")
            out.append(texts[match.group(1)])
            i = match.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def expand_request(request: Any, field: str) -> None:
    """Expand the templates of a Search/Query/Delete request in place (`field`: dsl or expr).

    Left as it is when a value cannot be written as text.
    """
    if not len(request.expr_template_values):
        return
    try:
        text = expand(getattr(request, field), request.expr_template_values)
    except (NotExpressible, ValueError):
        return
    setattr(request, field, text)
    request.expr_template_values.clear()
