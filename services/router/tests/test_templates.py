"""Templated filters expanded into literal expressions, values encoded as pymilvus encodes them."""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus.client.prepare import Prepare
from pymilvus.grpc_gen import milvus_pb2

from mishards.router import templates


def encoded(values: dict[str, Any]) -> Any:
    return Prepare.prepare_expression_template(values)


@pytest.mark.parametrize(
    "expr,values,expected",
    [
        ("grp == {g}", {"g": 2}, "grp == 2"),
        ("x > {f} and x < {h}", {"f": 0.5, "h": 1e-5}, "x > 0.5 and x < 1e-05"),
        ("ok == {b}", {"b": True}, "ok == true"),
        ("tag == {t}", {"t": 'a "q" \\ b'}, 'tag == "a \\"q\\" \\\\ b"'),
        ("grp in {gs}", {"gs": [1, 2]}, "grp in [1, 2]"),
        ("tag in {ts}", {"ts": ["x", "y"]}, 'tag in ["x", "y"]'),
        ("v in {fs}", {"fs": [1.5, 2.0]}, "v in [1.5, 2.0]"),
        ("v in {bs}", {"bs": [True, False]}, "v in [true, false]"),
        ("a == {m}", {"m": [1, 2.5]}, "a == [1, 2.5]"),
        ("a == {n}", {"n": [[1, 2], [3]]}, "a == [[1, 2], [3]]"),
        ("a == { g } or b == {g}", {"g": 7}, "a == 7 or b == 7"),
        ("t == \"{g}\" or t == '{g}' or g == {g}", {"g": 7}, "t == \"{g}\" or t == '{g}' or g == 7"),
        ('t == "a\\"{g}" and g == {g}', {"g": 1}, 't == "a\\"{g}" and g == 1'),
        ("grp in {gs}", {"gs": []}, "grp in []"),
    ],
)
def test_expand(expr: str, values: dict[str, Any], expected: str) -> None:
    assert templates.expand(expr, encoded(values)) == expected


def test_request_expanded_and_values_dropped() -> None:
    req = milvus_pb2.QueryRequest(expr="grp in {gs} and tag == {t}")
    for k, v in encoded({"gs": [3, 4], "t": "z"}).items():
        req.expr_template_values[k].CopyFrom(v)
    templates.expand_request(req, "expr")
    assert req.expr == 'grp in [3, 4] and tag == "z"'
    assert len(req.expr_template_values) == 0


@pytest.mark.parametrize("values", [{"other": 1}, {"g": b"raw"}, {"g": float("nan")}])
def test_inexpressible_request_is_forwarded_untouched(values: dict[str, Any]) -> None:
    req = milvus_pb2.SearchRequest(dsl="grp == {g}")
    for k, v in encoded(values).items():
        req.expr_template_values[k].CopyFrom(v)
    templates.expand_request(req, "dsl")
    assert req.dsl == "grp == {g}"
    assert set(req.expr_template_values) == set(values)


def test_no_templates_no_change() -> None:
    req = milvus_pb2.SearchRequest(dsl="x == '{y}'")
    templates.expand_request(req, "dsl")
    assert req.dsl == "x == '{y}'"
