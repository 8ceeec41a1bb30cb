"""What Go's `json.Unmarshal(data, &map[string]interface{})` answers, as Milvus 2.3.5 reports it.

Milvus 2.3.5 decodes every JSON and dynamic-field row that way and returns Go's error text,
so the router must produce the same text for the same bytes. Python's json module checks
the common case fast; when it refuses, or could disagree with Go (NaN, deep nesting, bytes
that are not UTF-8), a port of Go's encoding/json scanner (scanner.go) gives the exact
message, and the decode step adds Go's type errors (a top-level array, number, string or
bool, and numbers past float64's range).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAP_TYPE = "map[string]interface {}"
MAX_DEPTH = 10000  # encoding/json's maxNestingDepth
_SPACE = b" \t\r\n"


class _NotGo(Exception):
    """Python accepted something Go's scanner may not (NaN, Infinity)."""


def _refuse_constant(text: str) -> Any:
    raise _NotGo(text)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # one decoder: building one per row is slow


def unmarshal_map_error(data: bytes) -> str | None:
    """Go's error for decoding `data` into a map, or None when Go decodes it."""
    return decode_map(data)[0]


def decode_map(data: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """Go's error for decoding `data` into a map (or None), and the object decoded (None for
    null, or when Python cannot read it; keys come out unescaped as Go's do)."""

    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError, _NotGo):
        return _slow_error(data), None
    kind = _kind_of(value)
    if kind != "object" and kind != "null":
        return f"json: cannot unmarshal {kind} into Go value of type {MAP_TYPE}", None
    if kind == "object" and _overflows(value):
        return _overflow_error(data), value
    return None, value


def _overflows(value: Any) -> bool:
    """Whether a decoded object holds a number Go's float64 cannot (an inf, or an int past it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if math.isinf(item):
                return True
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**1023 and _too_big(item):
            return True
    return False


def _too_big(item: int) -> bool:
    try:
        return math.isinf(float(item))
    except OverflowError:
        return True


def _overflow_error(data: bytes) -> str:
    """Go names the first such number as written: read the text again to find it."""
    first: list[str] = []

    def number(text: str) -> int:
        if not first and _too_big_text(text):
            first.append(text)
        return 0

    json.loads(data.decode("utf-8"), parse_float=number, parse_int=number)
    return f"json: cannot unmarshal number {first[0]} into Go value of type float64"


def _too_big_text(text: str) -> bool:
    try:
        return math.isinf(float(text))
    except OverflowError:
        return True


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"


def _slow_error(data: bytes) -> str | None:
    scan = Scanner()
    syntax = scan.check(data)
    if syntax is not None:
        return syntax
    if scan.top not in ("object", "null"):
        return f"json: cannot unmarshal {scan.top} into Go value of type {MAP_TYPE}"
    if scan.overflow is not None:
        return f"json: cannot unmarshal number {scan.overflow} into Go value of type float64"
    return None


def quote_char(c: int) -> str:
    """Go's encoding/json quoteChar: a byte as the scanner names it in errors."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + go_quote_rune(c) + "'"


_GO_RUNE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\"}


def go_quote_rune(r: int) -> str:
    """strconv.Quote of one rune, without the surrounding quotes."""
    if r in _GO_RUNE_ESCAPES:
        return _GO_RUNE_ESCAPES[r]
    ch = chr(r)
    if ch.isprintable() or ch == " ":
        return ch
    if r < 0x80:
        return f"\\x{r:02x}"
    return f"\\u{r:04x}" if r < 0x10000 else f"\\U{r:08x}"


class Scanner:
    """encoding/json's scanner state machine over bytes (scanner.go), plus what decoding needs:
    the top-level value's kind and the first number too large for a float64."""

    def __init__(self) -> None:
        self.stack: list[str] = []  # "key" | "value" (object) | "array"
        self.step = self._begin_value
        self.error: str | None = None
        self.end_top = False
        self.top = ""
        self.overflow: str | None = None
        self._number = bytearray()

    def check(self, data: bytes) -> str | None:
        """Go's checkValid: the syntax error message, or None."""
        for c in data:
            self.step(c)
            if self.error is not None:
                return self.error
        if not self.end_top:
            self.step(0x20)
            if self.error is not None:
                return self.error
            if not self.end_top:
                return "unexpected end of JSON input"
        return None

    def _fail(self, c: int, context: str) -> None:
        self.step = self._stop
        self.error = f"invalid character {quote_char(c)} {context}"

    def _stop(self, c: int) -> None:
        return None

    def _push(self, c: int, state: str) -> None:
        self.stack.append(state)
        if len(self.stack) > MAX_DEPTH:
            self._fail(c, "exceeded max depth")

    def _begin_value(self, c: int) -> None:
        if c in _SPACE:
            return
        if not self.top:
            self.top = {0x7B: "object", 0x5B: "array", 0x22: "string", 0x74: "bool", 0x66: "bool", 0x6E: "null"}.get(
                c, "number"
            )
        if c == 0x7B:
            self.step = self._begin_key_or_empty
            self._push(c, "key")
        elif c == 0x5B:
            self.step = self._begin_value_or_empty
            self._push(c, "array")
        elif c == 0x22:
            self.step = self._in_string
        elif c == 0x2D or 0x30 <= c <= 0x39:
            self._number = bytearray([c])
            self.step = self._neg if c == 0x2D else (self._zero if c == 0x30 else self._digits)
        elif c in _LITERALS:
            self.step = self._literal(_LITERALS[c], 1)
        else:
            self._fail(c, "looking for beginning of value")

    def _begin_value_or_empty(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x5D:
            self._end_value(c)
        else:
            self._begin_value(c)

    def _begin_key_or_empty(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x7D:
            self.stack[-1] = "value"
            self._end_value(c)
        else:
            self._begin_key(c)

    def _begin_key(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x22:
            self.step = self._in_string
        else:
            self._fail(c, "looking for beginning of object key string")

    def _end_value(self, c: int) -> None:
        if not self.stack:
            self.end_top = True
            self.step = self._end_top
            self._end_top(c)
            return
        if c in _SPACE:
            self.step = self._end_value
            return
        state = self.stack[-1]
        if state == "key":
            if c == 0x3A:
                self.stack[-1] = "value"
                self.step = self._begin_value
            else:
                self._fail(c, "after object key")
        elif state == "value":
            if c == 0x2C:
                self.stack[-1] = "key"
                self.step = self._begin_key
            elif c == 0x7D:
                self._pop()
            else:
                self._fail(c, "after object key:value pair")
        elif c == 0x2C:
            self.step = self._begin_value
        elif c == 0x5D:
            self._pop()
        else:
            self._fail(c, "after array element")

    def _pop(self) -> None:
        self.stack.pop()
        if self.stack:
            self.step = self._end_value
        else:
            self.end_top = True
            self.step = self._end_top

    def _end_top(self, c: int) -> None:
        if c not in _SPACE:
            self._fail(c, "after top-level value")

    def _in_string(self, c: int) -> None:
        if c == 0x22:
            self.step = self._end_value
        elif c == 0x5C:
            self.step = self._in_escape
        elif c < 0x20:
            self._fail(c, "in string literal")

    def _in_escape(self, c: int) -> None:
        if c in b'bfnrt\\/"':
            self.step = self._in_string
        elif c == 0x75:
            self.step = self._hex(4)
        else:
            self._fail(c, "in string escape code")

    def _hex(self, left: int) -> Any:
        def step(c: int) -> None:
            if c in b"0123456789abcdefABCDEF":
                self.step = self._in_string if left == 1 else self._hex(left - 1)
            else:
                self._fail(c, "in \\u hexadecimal character escape")

        return step

    def _literal(self, word: bytes, at: int) -> Any:
        def step(c: int) -> None:
            if c != word[at]:
                self._fail(c, f"in literal {word.decode()} (expecting {quote_char(word[at])})")
            elif at + 1 == len(word):
                self.step = self._end_value
            else:
                self.step = self._literal(word, at + 1)

        return step

    def _neg(self, c: int) -> None:
        if 0x30 <= c <= 0x39:
            self._number.append(c)
            self.step = self._zero if c == 0x30 else self._digits
        else:
            self._fail(c, "in numeric literal")

    def _digits(self, c: int) -> None:
        if 0x30 <= c <= 0x39:
            self._number.append(c)
        else:
            self._zero(c)

    def _zero(self, c: int) -> None:
        if c == 0x2E:
            self._number.append(c)
            self.step = self._dot
        elif c in b"eE":
            self._number.append(c)
            self.step = self._exp
        else:
            self._number_done()
            self._end_value(c)

    def _dot(self, c: int) -> None:
        if 0x30 <= c <= 0x39:
            self._number.append(c)
            self.step = self._dot_digits
        else:
            self._fail(c, "after decimal point in numeric literal")

    def _dot_digits(self, c: int) -> None:
        if 0x30 <= c <= 0x39:
            self._number.append(c)
        elif c in b"eE":
            self._number.append(c)
            self.step = self._exp
        else:
            self._number_done()
            self._end_value(c)

    def _exp(self, c: int) -> None:
        if c in b"+-":
            self._number.append(c)
            self.step = self._exp_sign
        else:
            self._exp_sign(c)

    def _exp_sign(self, c: int) -> None:
        if 0x30 <= c <= 0x39:
            self._number.append(c)
            self.step = self._exp_digits
        else:
            self._fail(c, "in exponent of numeric literal")

    def _exp_digits(self, c: int) -> None:
        if 0x30 <= c <= 0x39:
            self._number.append(c)
        else:
            self._number_done()
            self._end_value(c)

    def _number_done(self) -> None:
        text = self._number.decode()
        if self.overflow is None and math.isinf(float(text)):
            self.overflow = text


_LITERALS = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}
