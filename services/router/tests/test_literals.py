"""Delete-expression keys read with each backend's literal rules, and written back exactly (offline).

The expected keys are what the real backends deleted: rows with these keys were inserted into
one Milvus 2.3.5 and one milvus-lite 3.2.2, each expression was sent as a delete, and the
rows that disappeared are the keys below.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymilvus.grpc_gen import schema_pb2

from mishards.router import literals
from mishards.router.literals import delete_expr, keys_of_delete_expr, quote

INT_PK = schema_pb2.FieldSchema(name="id", data_type=schema_pb2.Int64, is_primary_key=True)
STR_PK = schema_pb2.FieldSchema(name="pk", data_type=schema_pb2.VarChar, is_primary_key=True)

# expression -> the keys Milvus 2.3.5 deleted (None: it refused the expression or queried for it)
MILVUS_DELETED: list[tuple[str, Any]] = [
    ('pk in ["a\\"b"]', ['a"b']),
    ("pk in ['it\\'s']", ["it's"]),
    ('pk in ["a\\\\b"]', ["a\\b"]),
    ('pk in ["a\\nb"]', ["a\nb"]),
    ('pk in ["\\u00e9"]', ["é"]),
    ('pk in [u8"a"]', ['8"a']),
    ('pk in ["\\x41"]', ["A"]),
    ("pk in ['\"']", ['"']),
    ('pk == "\\\'"', ["'"]),
    ('pk in ["a\x01b"]', ["a\x01b"]),
    ('pk in ["x\\ty"]', ["x\ty"]),
    ('pk in ["a\\\\\\"b"]', ['a\\"b']),
    ('pk in ["\\101", "\\U0001F600"]', ["A", "😀"]),
    ('"x" == pk', ["x"]),
    ('pk in ["a","b",]', ["a", "b"]),
    ('pk in ["a\\?"]', None),  # Go's Unquote refuses \?
    ('pk in ["\\xff"]', None),  # not UTF-8: 2.3.5 refuses the key
    ('pk in ["\\ud800"]', None),
    ('pk in ["\\1"]', None),
    ('pk in ["a\\\nb"]', None),
    ('pk in ["a" "b"]', None),
    ("pk in [1]", None),
]
MILVUS_INT_DELETED: list[tuple[str, Any]] = [
    ("id in [017]", [15]),
    ("id in [0x10]", [16]),
    ("id in [0b11]", [3]),
    ("id in [--5]", [5]),
    ("id in [- 5]", [-5]),
    ("id in [+1]", [1]),
    ("2 == id", [2]),
    ("((id in [2]))", [2]),
    ("id\nin\n[1]", [1]),
    ("id in []", []),
    ("id in [9223372036854775807]", [9223372036854775807]),
    ("id in [9223372036854775808]", None),
    ("id in [-9223372036854775808]", None),  # the literal itself overflows before the minus
    ("id IN [1]", None),
    ("id in [1_000]", None),
    ("id in [\u0661]", None),
    ("id in [1.0]", None),
    ('id in ["a"]', None),
    ("id in [08]", None),
    ("id not in [1]", None),
    ("id in [1] and id in [2]", None),
    ("id in [1]\x0b", None),
    ("other in [1]", None),
]
LITE_DELETED: list[tuple[str, Any]] = [
    ('pk in ["a\\"b"]', ['a"b']),
    ("pk in ['it\\'s']", ["it's"]),
    ('pk in ["a\\\\b"]', ["a\\b"]),
    ('pk in ["a\\nb"]', ["a\nb"]),
    ("pk in ['\"']", ['"']),
    ('pk == "\\\'"', ["'"]),
    ('pk in ["a\x01b"]', ["a\x01b"]),
    ('pk in ["x\\ty"]', ["x\ty"]),
    ('pk in ["a\\\\\\"b"]', ['a\\"b']),
    ('pk in ["\\u00e9"]', None),  # milvus-lite knows six escapes only
    ('pk in ["\\x41"]', None),
    ('pk in [u8"a"]', None),
]
LITE_INT_DELETED: list[tuple[str, Any]] = [
    ("id in [017]", [17]),
    ("id IN [1]", [1]),
    ("id in [\u0661]", [1]),
    ("id in [- 5]", [-5]),
    ("id in [-9223372036854775808]", [-9223372036854775808]),
    ("2 == id", [2]),
    ("id in [0x10]", None),
    ("id in [--5]", None),
    ("id in [+1]", None),
    ("id in [1_000]", None),
]


@pytest.mark.parametrize(("expr", "keys"), MILVUS_DELETED)
def test_milvus_string_keys(expr: str, keys: Any) -> None:
    assert keys_of_delete_expr(expr, STR_PK, literals.MILVUS) == keys


@pytest.mark.parametrize(("expr", "keys"), MILVUS_INT_DELETED)
def test_milvus_integer_keys(expr: str, keys: Any) -> None:
    assert keys_of_delete_expr(expr, INT_PK, literals.MILVUS) == keys


@pytest.mark.parametrize(("expr", "keys"), LITE_DELETED)
def test_lite_string_keys(expr: str, keys: Any) -> None:
    assert keys_of_delete_expr(expr, STR_PK, literals.LITE) == keys


@pytest.mark.parametrize(("expr", "keys"), LITE_INT_DELETED)
def test_lite_integer_keys(expr: str, keys: Any) -> None:
    assert keys_of_delete_expr(expr, INT_PK, literals.LITE) == keys


def test_go_unquote_follows_strconv() -> None:
    assert literals.go_unquote('"plain é"') == "plain é"
    assert literals.go_unquote('"\\a\\b\\f\\n\\r\\t\\v\\\\\\""') == '\a\b\f\n\r\t\v\\"'
    assert literals.go_unquote('"\\303\\251"') == "é"  # octal bytes that form UTF-8
    assert literals.go_unquote('"\\xc3\\xa9"') == "é"
    for bad in ('"\\400"', '"\\x4"', '"\\u12"', '"\\U00110000"', '"\\q"', '"a\nb"', '"\\"'):
        with pytest.raises(literals.Unreadable):
            literals.go_unquote(bad)


def test_convert_escape_single_matches_milvus() -> None:
    assert literals.convert_escape_single("'a\"b'") == '"a\\"b"'
    assert literals.convert_escape_single("'it\\'s'") == '"it\'s"'
    assert literals.convert_escape_single('"a\\\\"') == '"a\\\\"'


@given(st.lists(st.text(), max_size=5))
def test_string_keys_round_trip_on_both_backends(keys: list[str]) -> None:
    expr = delete_expr(STR_PK, keys)
    assert keys_of_delete_expr(expr, STR_PK, literals.MILVUS) == keys
    assert keys_of_delete_expr(expr, STR_PK, literals.LITE) == keys


@given(st.lists(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), max_size=5))
def test_integer_keys_round_trip_on_both_backends(keys: list[int]) -> None:
    expr = delete_expr(INT_PK, keys)
    assert keys_of_delete_expr(expr, INT_PK, literals.MILVUS) == keys
    assert keys_of_delete_expr(expr, INT_PK, literals.LITE) == keys


def test_the_smallest_int64_is_named_without_a_literal_milvus_cannot_read() -> None:
    expr = delete_expr(INT_PK, [3, -(2**63)])
    assert expr == "id in [3] or id < -9223372036854775807"
    assert delete_expr(INT_PK, [-(2**63)]) == "id < -9223372036854775807"


def test_quote_escapes_only_what_the_lexers_need() -> None:
    assert quote('a"b\\c\nd\re\tf\x01é') == '"a\\"b\\\\c\\nd\\re\tf\x01é"'
