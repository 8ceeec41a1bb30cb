"""Primary keys named by a delete expression, read with the backend's own literal rules.

A delete of `pk in [...]` or `pk == v` is routed by key, so the router must read each key
exactly as the backend would: a varchar key is hashed to its shard by its UTF-8 bytes, and
`"a\\"b"` names `a"b`, not `a\\"b`. Milvus 2.3.5 reads string literals with Go's
`strconv.Unquote` (after its plan parser's `convertEscapeSingle`, so single-quoted strings
work too) and integers as `-?(0|[1-9][0-9]*)` in the int64 range (octal, hex, `1_000`,
`+1` and non-ASCII digits are not read here); milvus-lite reads strings with its own six
escapes. Anything not read exactly gives None: the expression then goes the query way.
`delete_expr` writes keys back as an expression both backends read to the same keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pymilvus.grpc_gen import schema_pb2

MILVUS = "milvus"
LITE = "lite"

INT64_MAX = 2**63 - 1
_WS = " \t\r\n"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Milvus's IntegerConstant (Plan.g4): hex, binary, octal (a leading 0) or decimal, read by
# strconv.ParseInt(text, 0, 64); unary + and - may precede it, with spaces between
_SIGNS = re.compile(r"[+\- \t\r\n]*")
_INT = re.compile(r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*")
# Plan.g4's EncodingPrefix: Milvus 2.3.5 then drops the prefix's first character as if it were
# the opening quote (u8"a" names `8"a`)
_PREFIX = re.compile(r"(u8|u|U|L)[\"']")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_.]")
# Go's single-character escapes (strconv.UnquoteChar), and milvus-lite's only escapes.
_GO_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_LITE_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


class Unreadable(Exception):
    """The expression is not a key list the router reads exactly."""


def keys_of_delete_expr(expr: str, pk: schema_pb2.FieldSchema, dialect: str = MILVUS) -> list[Any] | None:
    """The keys of `pk in [...]`, `pk == v` or `v == pk` (in parentheses or not), or None."""
    keys = literal_keys(expr, pk.name, dialect)
    want = int if pk.data_type == schema_pb2.Int64 else str
    if keys is None or pk.data_type not in (schema_pb2.Int64, schema_pb2.VarChar):
        return None
    if any(type(k) is not want for k in keys) or (want is int and any(not -(2**63) <= k <= INT64_MAX for k in keys)):
        return None
    return keys


def literal_keys(expr: str, pk_name: str, dialect: str = MILVUS, term_only: bool = False) -> list[Any] | None:
    """The literals of a key expression as read (ints and strings, whatever the key's type),
    or None; with `term_only`, only the `pk in [...]` form (milvus-lite's delete reads no other)."""
    reader = _Reader(expr, dialect)
    try:
        return reader.keys(pk_name, term_only)
    except Unreadable:
        return None


class _Reader:
    """A cursor over one expression; every method raises Unreadable on anything unexpected."""

    def __init__(self, text: str, dialect: str) -> None:
        self.text = text
        self.pos = 0
        self.lite = dialect == LITE

    def keys(self, pk_name: str, term_only: bool = False) -> list[Any]:
        depth = 0
        while self._take("("):
            depth += 1
        keys = self._term_or_equality(pk_name, term_only)
        for _ in range(depth):
            self._expect(")")
        self._skip()
        if self.pos != len(self.text):
            raise Unreadable
        return keys

    def _term_or_equality(self, pk_name: str, term_only: bool) -> list[Any]:
        self._skip()
        if _IDENT.match(self.text, self.pos) is None and not term_only:  # `v == pk`
            value = self._literal()
            self._expect("==")
            self._field(pk_name)
            return [value]
        self._field(pk_name)
        if not term_only and self._take("=="):
            return [self._literal()]
        self._keyword_in()
        self._expect("[")
        values: list[Any] = []
        while not self._take("]"):
            values.append(self._literal())
            if not self._take(","):
                self._expect("]")
                break
        return values

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def _take(self, token: str) -> bool:
        self._skip()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._take(token):
            raise Unreadable

    def _word(self) -> str:
        self._skip()
        match = _IDENT.match(self.text, self.pos)
        if match is None:
            raise Unreadable
        self.pos = match.end()
        return match.group()

    def _field(self, pk_name: str) -> None:
        if self._word() != pk_name:
            raise Unreadable

    def _keyword_in(self) -> None:
        word = self._word()  # Milvus 2.3.5 knows `in` only; milvus-lite any case of it
        if word != "in" and not (self.lite and word.lower() == "in"):
            raise Unreadable

    def _literal(self) -> Any:
        self._skip()
        ch = self.text[self.pos : self.pos + 1]
        if ch in ('"', "'"):
            return self._string(ch)
        prefix = _PREFIX.match(self.text, self.pos)
        if prefix is not None and not self.lite:
            return self._string(self.text[prefix.end() - 1], prefix.end() - 1 - self.pos)
        return self._lite_integer() if self.lite else self._milvus_integer()

    def _milvus_integer(self) -> int:
        signs = _SIGNS.match(self.text, self.pos)
        assert signs is not None  # the pattern matches the empty string
        match = _INT.match(self.text, signs.end())
        if match is None or _IDENT_CHAR.match(self.text, match.end()):
            raise Unreadable  # 1.0, 1e3, 08, 1_000, non-ASCII digits: not Milvus integers
        self.pos = match.end()
        magnitude = (
            int(match.group(), 0) if match.group()[1:2] in ("x", "X", "b", "B") else _octal_or_decimal(match.group())
        )
        if magnitude > INT64_MAX:
            raise Unreadable
        return -magnitude if signs.group().count("-") % 2 else magnitude

    def _lite_integer(self) -> int:
        """milvus-lite's `_read_number`: any characters str.isdigit() takes, read by int()."""
        negative = self.text.startswith("-", self.pos)
        if negative:
            self.pos += 1
            self._skip()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1
        if self.pos == start or _IDENT_CHAR.match(self.text, self.pos):
            raise Unreadable
        try:
            value = int(self.text[start : self.pos])
        except ValueError:
            raise Unreadable from None
        return -value if negative else value

    def _string(self, quote: str, prefix: int = 0) -> str:
        start = self.pos
        i = start + prefix + 1
        while i < len(self.text) and self.text[i] != quote:
            if self.text[i] in "\r\n":
                raise Unreadable
            i += 2 if self.text[i] == "\\" else 1
        if i >= len(self.text):
            raise Unreadable
        self.pos = i + 1
        literal = self.text[start : i + 1]  # with its encoding prefix, which Milvus reads as the opening quote
        return _lite_unescape(literal[1:-1]) if self.lite else go_unquote(convert_escape_single(literal))


def _octal_or_decimal(text: str) -> int:
    return int(text, 8) if len(text) > 1 and text[0] == "0" else int(text)


def convert_escape_single(literal: str) -> str:
    """Milvus's planparserv2 convertEscapeSingle: any quoted literal as a Go double-quoted one."""
    body = literal[1:-1]
    out = []
    backslashes = 0
    for ch in body:
        if ch == "\\":
            backslashes += 1
            out.append(ch)
            continue
        if ch == '"' and backslashes % 2 == 0:
            out.append('\\"')
        elif ch == "'" and backslashes % 2:
            out[-1] = "'"  # `\'` becomes a bare quote
        else:
            out.append(ch)
        backslashes = 0
    return '"' + "".join(out) + '"'


def go_unquote(quoted: str) -> str:
    """Go's strconv.Unquote of a double-quoted string, as text (raises Unreadable on an error,
    and on bytes that are not UTF-8, which no str key can hold)."""
    body = quoted[1:-1]
    if "\\" not in body and "\n" not in body:
        if '"' in body:
            raise Unreadable
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"' or ch == "\n":
            raise Unreadable
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        i = _go_escape(body, i + 1, out)
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable from None


def _go_escape(body: str, i: int, out: bytearray) -> int:
    """Append the escape at body[i] (just after a backslash); the index after it."""
    if i >= len(body):
        raise Unreadable
    c = body[i]
    if c in _GO_ESCAPES:
        out.append(_GO_ESCAPES[c])
        return i + 1
    width = {"x": 2, "u": 4, "U": 8}.get(c)
    if width is not None:
        digits = body[i + 1 : i + 1 + width]
        if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise Unreadable
        value = int(digits, 16)
        if c == "x":
            out.append(value)  # one byte, UTF-8 or not
        elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise Unreadable
        else:
            out += chr(value).encode()
        return i + 1 + width
    digits = body[i : i + 3]
    if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) <= 255:
        out.append(int(digits, 8))
        return i + 3
    raise Unreadable


def _lite_unescape(body: str) -> str:
    """milvus-lite's string literal reading (search/filter/tokens.py `_read_string`)."""
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            mapped = _LITE_ESCAPES.get(body[i + 1 : i + 2])
            if mapped is None:
                raise Unreadable
            out.append(mapped)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def quote(key: str) -> str:
    """A string literal both backends read back as `key` (raw characters but these four)."""
    escaped = key.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def delete_expr(pk: schema_pb2.FieldSchema, keys: Sequence[Any]) -> str:
    """`pk in [...]` naming exactly `keys`, read the same by Milvus 2.3.5 and milvus-lite."""
    if pk.data_type != schema_pb2.Int64:
        return f"{pk.name} in [{','.join(quote(str(k)) for k in keys)}]"
    ints = [int(k) for k in keys]
    # Milvus reads -9223372036854775808 as minus an overflowing literal: that key needs a comparison
    smallest = f"{pk.name} < -{INT64_MAX}" if -(2**63) in ints else ""
    listed = [k for k in ints if k != -(2**63)]
    term = f"{pk.name} in [{','.join(map(str, listed))}]" if listed or not smallest else ""
    return " or ".join(part for part in (term, smallest) if part)
