"""Tests of mishards.router.columns: row take/concat on Milvus columnar data."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus import DataType, MilvusClient
from pymilvus.client import entity_helper
from pymilvus.client.abstract import CollectionSchema
from pymilvus.client.prepare import Prepare
from pymilvus.client.search_result import SearchResult
from pymilvus.client.types import HybridExtraList
from pymilvus.client.utils import len_of
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.router import columns
from mishards.router.columns import (
    concat,
    ids_concat,
    ids_len,
    ids_take,
    ids_values,
    num_rows,
    take_rows,
)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- a schema with every kind pymilvus 3.0.2 can insert --------------------------------

NULLABLE_SCALARS = {"s", "j", "arr_i", "geo", "tz", "n_i32", "n_d"}


def _schema_info() -> dict[str, Any]:
    sch = MilvusClient.create_schema(enable_dynamic_field=True)
    sch.add_field("pk", DataType.INT64, is_primary=True)
    sch.add_field("b", DataType.BOOL)
    sch.add_field("i8", DataType.INT8)
    sch.add_field("i16", DataType.INT16)
    sch.add_field("i32", DataType.INT32)
    sch.add_field("f", DataType.FLOAT)
    sch.add_field("d", DataType.DOUBLE)
    sch.add_field("s", DataType.VARCHAR, max_length=64, nullable=True)
    sch.add_field("j", DataType.JSON, nullable=True)
    sch.add_field(
        "arr_i",
        DataType.ARRAY,
        element_type=DataType.INT64,
        max_capacity=8,
        nullable=True,
    )
    sch.add_field(
        "arr_s",
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=8,
        max_length=16,
    )
    sch.add_field("geo", DataType.GEOMETRY, nullable=True)
    sch.add_field("tz", DataType.TIMESTAMPTZ, nullable=True)
    sch.add_field("n_i32", DataType.INT32, nullable=True)
    sch.add_field("n_d", DataType.DOUBLE, nullable=True)
    sch.add_field("fv", DataType.FLOAT_VECTOR, dim=4)
    sch.add_field("nfv", DataType.FLOAT_VECTOR, dim=3, nullable=True)
    sch.add_field("bv", DataType.BINARY_VECTOR, dim=16)
    sch.add_field("f16", DataType.FLOAT16_VECTOR, dim=4)
    sch.add_field("bf16", DataType.BFLOAT16_VECTOR, dim=2, nullable=True)
    sch.add_field("i8v", DataType.INT8_VECTOR, dim=4)
    sch.add_field("sp", DataType.SPARSE_FLOAT_VECTOR, nullable=True)
    sub = MilvusClient.create_struct_field_schema()
    sub.add_field("a", DataType.INT32)
    sub.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    sch.add_field(
        "st",
        DataType.ARRAY,
        element_type=DataType.STRUCT,
        struct_schema=sub,
        max_capacity=4,
    )
    req = Prepare.create_collection_request("c", sch)
    proto = schema_pb2.CollectionSchema.FromString(req.schema)
    return CollectionSchema(milvus_pb2.DescribeCollectionResponse(schema=proto)).dict()


INFO = _schema_info()
FIELDS = INFO["fields"]
STRUCTS = INFO["struct_array_fields"]
# same schema with scalars non-nullable: builds result-layout (padded) scalar columns
FIELDS_PADDED = [
    {k: v for k, v in f.items() if k != "nullable"} if f["name"] in NULLABLE_SCALARS else f for f in FIELDS
]
ELEMENT_TYPES = {
    "arr_i": DataType.INT64,
    "arr_s": DataType.VARCHAR,
    "a": DataType.INT32,
}
FILL = {
    "s": "",
    "j": {},
    "arr_i": [],
    "geo": "POINT (0 0)",
    "tz": "1970-01-01T00:00:00Z",
    "n_i32": 0,
    "n_d": 0.0,
}

f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _opt(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


@st.composite
def _row(draw: st.DrawFn, pk: int) -> dict[str, Any]:
    sparse_keys = draw(st.lists(st.integers(0, 50), unique=True, max_size=4))
    row = {
        "pk": pk,
        "b": draw(st.booleans()),
        "i8": draw(st.integers(-128, 127)),
        "i16": draw(st.integers(-(2**15), 2**15 - 1)),
        "i32": draw(st.integers(-(2**31), 2**31 - 1)),
        "f": draw(f32),
        "d": draw(st.floats(allow_nan=False)),
        "s": draw(_opt(st.text(max_size=8))),
        "j": draw(_opt(st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9), max_size=2))),
        "arr_i": draw(_opt(st.lists(st.integers(-5, 5), max_size=3))),
        "arr_s": draw(st.lists(st.text(max_size=3), max_size=3)),
        "geo": draw(
            _opt(
                st.builds(
                    lambda x, y: f"POINT ({x} {y})",
                    st.integers(0, 9),
                    st.integers(0, 9),
                )
            )
        ),
        "tz": draw(_opt(st.sampled_from(["2024-01-01T00:00:00Z", "2025-06-30T12:34:56Z"]))),
        "n_i32": draw(_opt(st.integers(-100, 100))),
        "n_d": draw(_opt(st.floats(allow_nan=False))),
        "fv": draw(st.lists(f32, min_size=4, max_size=4)),
        "nfv": draw(_opt(st.lists(f32, min_size=3, max_size=3))),
        "bv": draw(st.binary(min_size=2, max_size=2)),
        "f16": draw(st.binary(min_size=8, max_size=8)),
        "bf16": draw(_opt(st.binary(min_size=4, max_size=4))),
        "i8v": draw(st.binary(min_size=4, max_size=4)),
        "sp": draw(_opt(st.just({k: 0.5 + k for k in sorted(sparse_keys)}))),
        "st": draw(
            st.lists(
                st.fixed_dictionaries({"a": st.integers(0, 9), "v": st.lists(f32, min_size=2, max_size=2)}),
                max_size=2,
            )
        ),
    }
    if draw(st.booleans()):
        row["dyn"] = draw(st.integers(0, 9))
    return row


@st.composite
def _rows(draw: st.DrawFn, min_size: int = 1, max_size: int = 6, start: int = 0) -> list[dict[str, Any]]:
    n = draw(st.integers(min_size, max_size))
    return [draw(_row(start + i)) for i in range(n)]


def _insert(rows: list[dict[str, Any]], fields: list[dict[str, Any]] = FIELDS) -> list[schema_pb2.FieldData]:
    req = Prepare.row_insert_param("c", rows, "", fields, STRUCTS, enable_dynamic=True)
    return list(req.fields_data)


def _result_layout(rows: list[dict[str, Any]]) -> list[schema_pb2.FieldData]:
    """Columns laid out as Milvus returns them: scalars padded, vectors compact."""
    filled = [{k: (FILL[k] if v is None and k in FILL else v) for k, v in r.items()} for r in rows]
    fds = _insert(filled, FIELDS_PADDED)
    for fd in fds:
        if fd.WhichOneof("field") is None:  # all-null sparse column: Milvus names its kind
            fd.vectors.sparse_float_vector.SetInParent()
        # Milvus names array element types in results (pymilvus inserts leave them unset)
        for col in [fd, *fd.struct_arrays.fields]:
            if col.type == DataType.ARRAY:
                col.scalars.array_data.element_type = ELEMENT_TYPES[col.field_name]
        if fd.field_name in NULLABLE_SCALARS:
            fd.valid_data.extend([r[fd.field_name] is not None for r in rows])
    return fds


def _decode_query(fds: list[schema_pb2.FieldData]) -> list[dict[str, Any]]:
    """Rows as pymilvus's query() decodes them."""
    n = len_of(fds[0])
    assert all(len_of(fd) == n for fd in fds)
    keys = [fd.field_name for fd in fds if fd.field_name != "$meta"]
    results = [dict.fromkeys(keys) for _ in range(n)]
    lazy = [fd for fd in fds if entity_helper.extract_row_data_from_fields_data_v2(fd, results)]
    return [dict(r) for r in HybridExtraList(lazy, results, extra={}, dynamic_fields=[])]


def _decode_search(fds: list[schema_pb2.FieldData], pks: list[int]) -> list[dict[str, Any]]:
    """Hit entities as pymilvus's search() decodes them (one query)."""
    res = schema_pb2.SearchResultData(
        num_queries=1,
        top_k=len(pks),
        fields_data=fds,
        scores=[0.0] * len(pks),
        ids=schema_pb2.IDs(int_id=schema_pb2.LongArray(data=pks)),
        topks=[len(pks)],
        output_fields=[fd.field_name for fd in fds],
        primary_field_name="pk",
    )
    return [dict(hit["entity"]) for hit in SearchResult(res)[0]]


def _normal(fd: schema_pb2.FieldData) -> schema_pb2.FieldData:
    """pymilvus leaves out an all-null sparse column's empty ``vectors``; so may we not."""
    if fd.WhichOneof("field") == "vectors" and fd.vectors.ByteSize() == 0:
        fd = schema_pb2.FieldData.FromString(fd.SerializeToString())
        fd.ClearField("vectors")
    return fd


def _assert_fields_equal(got: list[schema_pb2.FieldData], want: list[schema_pb2.FieldData]) -> None:
    assert [f.field_name for f in got] == [f.field_name for f in want]
    for g, w in zip(map(_normal, got), map(_normal, want), strict=True):
        assert g == w, f"field {w.field_name}:\n{g}\n!=\n{w}"


# --- insert layout: take/concat equal what pymilvus builds from the same rows ----------


@SETTINGS
@given(data=st.data())
def test_take_rows_equals_pymilvus_insert_of_selected_rows(data: st.DataObject) -> None:
    rows = data.draw(_rows())
    idx = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=8))
    got = take_rows(_insert(rows), idx)
    _assert_fields_equal(got, _insert([rows[i] for i in idx]))
    assert num_rows(got) == len(idx)


@SETTINGS
@given(a=_rows(), b=_rows(start=100))
def test_concat_equals_pymilvus_insert_of_all_rows(a: list[dict], b: list[dict]) -> None:
    _assert_fields_equal(concat([_insert(a), _insert(b)]), _insert(a + b))


@SETTINGS
@given(data=st.data())
def test_take_of_concat_is_take_of_union(data: st.DataObject) -> None:
    a, b = data.draw(_rows()), data.draw(_rows(start=100))
    union = a + b
    perm = data.draw(st.permutations(range(len(union))))
    got = take_rows(concat([_insert(a), [], _insert(b)]), perm)
    _assert_fields_equal(got, _insert([union[i] for i in perm]))
    _assert_fields_equal(columns.concat_take([_insert(a), _insert(b)], perm), got)


# --- result layout: pymilvus decodes taken rows as the same rows -----------------------


@SETTINGS
@given(data=st.data())
def test_query_decoding_commutes_with_take(data: st.DataObject) -> None:
    rows = data.draw(_rows())
    fds = _result_layout(rows)
    idx = data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=8))
    before = _decode_query(fds)
    assert _decode_query(take_rows(fds, idx)) == [before[i] for i in idx]


@SETTINGS
@given(data=st.data())
def test_search_decoding_commutes_with_take_of_concat(data: st.DataObject) -> None:
    a, b = data.draw(_rows()), data.draw(_rows(start=100))
    union = a + b
    perm = data.draw(st.lists(st.integers(0, len(union) - 1), max_size=10))
    fa, fb = _result_layout(a), _result_layout(b)
    before = _decode_search(fa, [r["pk"] for r in a]) + _decode_search(fb, [r["pk"] for r in b])
    after = _decode_search(take_rows(concat([fa, fb]), perm), [union[i]["pk"] for i in perm])
    assert after == [before[i] for i in perm]


def test_result_layout_keeps_nullable_scalars_padded_and_vectors_compact() -> None:
    rows = [
        {
            **FILL,
            "pk": 1,
            "b": True,
            "i8": 1,
            "i16": 1,
            "i32": 1,
            "f": 1.0,
            "d": 1.0,
            "arr_s": [],
            "fv": [1.0] * 4,
            "nfv": None,
            "bv": b"ab",
            "f16": b"x" * 8,
            "bf16": None,
            "i8v": b"1234",
            "sp": None,
            "st": [],
            "s": None,
        },
        {
            **FILL,
            "pk": 2,
            "b": True,
            "i8": 1,
            "i16": 1,
            "i32": 1,
            "f": 1.0,
            "d": 1.0,
            "arr_s": [],
            "fv": [2.0] * 4,
            "nfv": [1.0, 2.0, 3.0],
            "bv": b"cd",
            "f16": b"y" * 8,
            "bf16": b"zzzz",
            "i8v": b"5678",
            "sp": {3: 1.0},
            "st": [],
            "s": "x",
        },
    ]
    got = {fd.field_name: fd for fd in take_rows(_result_layout(rows), [1, 0, 1])}
    assert list(got["s"].scalars.string_data.data) == ["x", "", "x"]
    assert list(got["s"].valid_data) == [True, False, True]
    assert list(got["nfv"].vectors.float_vector.data) == [1.0, 2.0, 3.0] * 2
    assert list(got["nfv"].valid_data) == [True, False, True]
    assert got["sp"].vectors.sparse_float_vector.contents[0] == struct.pack("<If", 3, 1.0)


# --- every ScalarField / VectorField member, against a plain-Python reference ----------


def _payload_len(fd: schema_pb2.FieldData) -> int:
    return columns._read(fd).stored


def _ref_rows(fd: schema_pb2.FieldData) -> list[Any]:
    """Per-row values read with plain Python (None for null rows)."""
    kind = fd.WhichOneof("field")
    dim = fd.vectors.dim
    if kind == "scalars":
        member = fd.scalars.WhichOneof("data")
        entries: list[Any] = list(getattr(fd.scalars, member).data) if member else []
    elif kind == "vectors":
        member = fd.vectors.WhichOneof("data")
        if member == "float_vector":
            flat = list(fd.vectors.float_vector.data)
            entries = [flat[i : i + dim] for i in range(0, len(flat), dim)]
        elif member in (
            "binary_vector",
            "float16_vector",
            "bfloat16_vector",
            "int8_vector",
        ):
            width = {"binary_vector": dim // 8, "int8_vector": dim}.get(member, 2 * dim)
            raw = getattr(fd.vectors, member)
            entries = [raw[i : i + width] for i in range(0, len(raw), width)]
        elif member == "sparse_float_vector":
            entries = list(fd.vectors.sparse_float_vector.contents)
        elif member == "vector_array":
            entries = list(fd.vectors.vector_array.data)
        else:
            entries = []
    else:
        entries = []
    valid = list(fd.valid_data)
    if not valid:
        return entries
    if len(entries) == len(valid):
        return [e if ok else None for e, ok in zip(entries, valid, strict=True)]
    it = iter(entries)
    return [next(it) if ok else None for ok in valid]


_SCALAR_VALUES: dict[str, st.SearchStrategy] = {
    "bool_data": st.booleans(),
    "int_data": st.integers(-(2**31), 2**31 - 1),
    "date_data": st.integers(-(2**31), 2**31 - 1),
    "long_data": st.integers(-(2**63), 2**63 - 1),
    "timestamptz_data": st.integers(-(2**63), 2**63 - 1),
    "time_data": st.integers(-(2**63), 2**63 - 1),
    "float_data": f32,
    "double_data": st.floats(allow_nan=False),
    "string_data": st.text(max_size=5),
    "geometry_wkt_data": st.text(max_size=5),
    "mol_smiles_data": st.text(max_size=5),
    "bytes_data": st.binary(max_size=5),
    "json_data": st.binary(max_size=5),
    "geometry_data": st.binary(max_size=5),
    "mol_data": st.binary(max_size=5),
    "array_data": st.lists(st.integers(-9, 9), max_size=3).map(
        lambda xs: schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=xs))
    ),
}
_VECTOR_MEMBERS = [
    "float_vector",
    "binary_vector",
    "float16_vector",
    "bfloat16_vector",
    "int8_vector",
    "sparse_float_vector",
    "vector_array",
]


def test_reference_covers_every_proto_member() -> None:
    scalar = {f.name for f in schema_pb2.ScalarField.DESCRIPTOR.oneofs_by_name["data"].fields}
    vector = {f.name for f in schema_pb2.VectorField.DESCRIPTOR.oneofs_by_name["data"].fields}
    assert scalar == set(_SCALAR_VALUES)
    assert vector == set(_VECTOR_MEMBERS)


def _vector_row(member: str, dim: int) -> st.SearchStrategy:
    if member == "float_vector":
        return st.lists(f32, min_size=dim, max_size=dim)
    if member == "sparse_float_vector":
        return st.lists(st.integers(0, 99), unique=True, max_size=3).map(
            lambda ks: b"".join(struct.pack("<If", k, k / 2) for k in sorted(ks))
        )
    if member == "vector_array":
        return st.lists(st.lists(f32, min_size=dim, max_size=dim), max_size=2).map(
            lambda vs: schema_pb2.VectorField(
                dim=dim,
                float_vector=schema_pb2.FloatArray(data=[x for v in vs for x in v]),
            )
        )
    width = {"binary_vector": dim // 8, "int8_vector": dim}.get(member, 2 * dim)
    return st.binary(min_size=width, max_size=width)


@st.composite
def _column(draw: st.DrawFn, member: str, nullable: bool, compact: bool, dim: int) -> schema_pb2.FieldData:
    """A random FieldData of one proto member, padded or compact when nullable."""
    n = draw(st.integers(0, 6))
    valid = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if nullable else [True] * n
    fd = schema_pb2.FieldData(field_name="x", field_id=7, is_dynamic=member == "json_data")
    keep = [ok or not compact for ok in valid]
    if member in _SCALAR_VALUES:
        values = [draw(_SCALAR_VALUES[member]) for ok in keep if ok]
        container = getattr(fd.scalars, member)
        container.SetInParent()
        container.data.extend(values)
        if member == "array_data":
            container.element_type = DataType.INT64
    else:
        dim = 8 * dim if member == "binary_vector" else dim
        values = [draw(_vector_row(member, dim)) for ok in keep if ok]
        fd.vectors.dim = dim
        if member == "float_vector":
            fd.vectors.float_vector.data.extend([x for v in values for x in v])
        elif member == "sparse_float_vector":
            fd.vectors.sparse_float_vector.contents.extend(values)
            fd.vectors.sparse_float_vector.dim = columns._sparse_dim(values)
        elif member == "vector_array":
            fd.vectors.vector_array.SetInParent()
            fd.vectors.vector_array.dim = dim
            fd.vectors.vector_array.element_type = DataType.FLOAT_VECTOR
            fd.vectors.vector_array.data.extend(values)
        else:
            setattr(fd.vectors, member, b"".join(values))
    if nullable:
        fd.valid_data.extend(valid)
    return fd


_MEMBERS = sorted(_SCALAR_VALUES) + _VECTOR_MEMBERS


@SETTINGS
@given(
    data=st.data(),
    member=st.sampled_from(_MEMBERS),
    nullable=st.booleans(),
    compact=st.booleans(),
)
def test_take_and_concat_every_member(data: st.DataObject, member: str, nullable: bool, compact: bool) -> None:
    dim = data.draw(st.integers(1, 3))
    a = data.draw(_column(member, nullable, compact, dim))
    b = data.draw(_column(member, nullable, compact, dim))
    ra, rb = _ref_rows(a), _ref_rows(b)
    idx = data.draw(st.lists(st.integers(0, max(len(ra) - 1, 0)), max_size=8 if ra else 0))

    (taken,) = take_rows([a], idx)
    assert _ref_rows(taken) == [ra[i] for i in idx]
    assert (taken.type, taken.field_name, taken.field_id, taken.is_dynamic) == (
        a.type,
        a.field_name,
        a.field_id,
        a.is_dynamic,
    )
    glued = concat([[a], [b]])
    if not ra and not rb:
        assert num_rows(glued) == 0
        return
    (glued_fd,) = glued
    assert _ref_rows(glued_fd) == ra + rb
    assert num_rows(glued) == len(ra) + len(rb)
    if nullable and compact:  # layout kept: payload holds valid rows only
        assert _payload_len(glued_fd) == sum(x is not None for x in ra + rb)
    elif nullable:
        assert _payload_len(glued_fd) == len(ra) + len(rb)


def test_concat_of_mixed_layouts_pads_scalars_and_compacts_vectors() -> None:
    padded = schema_pb2.FieldData(
        field_name="x",
        scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=[1, 0])),
        valid_data=[True, False],
    )
    compact = schema_pb2.FieldData(
        field_name="x",
        scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=[3])),
        valid_data=[False, True],
    )
    (out,) = concat([[padded], [compact]])
    assert list(out.scalars.long_data.data) == [1, 0, 0, 3]
    assert list(out.valid_data) == [True, False, False, True]

    vec_padded = schema_pb2.FieldData(
        field_name="v",
        vectors=schema_pb2.VectorField(dim=1, float_vector=schema_pb2.FloatArray(data=[1.0, 0.0])),
        valid_data=[True, False],
    )
    vec_compact = schema_pb2.FieldData(
        field_name="v",
        vectors=schema_pb2.VectorField(dim=1, float_vector=schema_pb2.FloatArray(data=[3.0])),
        valid_data=[False, True],
    )
    (vec,) = concat([[vec_padded], [vec_compact]])
    assert list(vec.vectors.float_vector.data) == [1.0, 3.0]


def test_concat_skips_empty_parts_and_keeps_schema_when_all_empty() -> None:
    rows = [
        {
            "pk": 1,
            "b": True,
            "i8": 1,
            "i16": 1,
            "i32": 1,
            "f": 1.0,
            "d": 1.0,
            "s": None,
            "j": None,
            "arr_i": None,
            "arr_s": [],
            "geo": None,
            "tz": None,
            "n_i32": None,
            "n_d": None,
            "fv": [1.0] * 4,
            "nfv": None,
            "bv": b"ab",
            "f16": b"x" * 8,
            "bf16": None,
            "i8v": b"1234",
            "sp": None,
            "st": [],
        }
    ]
    full = _insert(rows)
    empty = take_rows(full, [])
    assert num_rows(empty) == 0
    assert [f.field_name for f in empty] == [f.field_name for f in full]
    assert [f.type for f in empty] == [f.type for f in full]
    # a part with no rows may lack fields entirely
    _assert_fields_equal(concat([[], empty, full, [schema_pb2.FieldData(field_name="pk")]]), full)
    assert num_rows(concat([[], empty])) == 0
    assert concat([]) == [] and concat([[], []]) == []


def test_errors() -> None:
    a = schema_pb2.FieldData(
        field_name="x",
        scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=[1, 2])),
    )
    b = schema_pb2.FieldData(
        field_name="x",
        scalars=schema_pb2.ScalarField(string_data=schema_pb2.StringArray(data=["a"])),
    )
    with pytest.raises(IndexError):
        take_rows([a], [2])
    with pytest.raises(IndexError):
        take_rows([a], [-1])
    with pytest.raises(ValueError):
        concat([[a], [b]])
    v1 = schema_pb2.FieldData(
        field_name="x",
        vectors=schema_pb2.VectorField(dim=1, float_vector=schema_pb2.FloatArray(data=[1.0])),
    )
    v2 = schema_pb2.FieldData(
        field_name="x",
        vectors=schema_pb2.VectorField(dim=2, float_vector=schema_pb2.FloatArray(data=[1.0, 2.0])),
    )
    with pytest.raises(ValueError):
        concat([[v1], [v2]])
    with pytest.raises(ValueError):
        concat([[a], [schema_pb2.FieldData(field_name="y", scalars=a.scalars)]])
    bad = schema_pb2.FieldData(field_name="x", scalars=a.scalars, valid_data=[True, False, False])
    with pytest.raises(ValueError):
        take_rows([bad], [0])
    assert take_rows([], [0, 1]) == []


def test_num_rows_of_every_shape() -> None:
    assert num_rows([]) == 0
    fds = _insert(
        [
            {
                "pk": i,
                "b": True,
                "i8": 1,
                "i16": 1,
                "i32": 1,
                "f": 1.0,
                "d": 1.0,
                "s": None,
                "j": None,
                "arr_i": None,
                "arr_s": [],
                "geo": None,
                "tz": None,
                "n_i32": None,
                "n_d": None,
                "fv": [1.0] * 4,
                "nfv": None,
                "bv": b"ab",
                "f16": b"x" * 8,
                "bf16": None,
                "i8v": b"1234",
                "sp": None,
                "st": [{"a": 1, "v": [1.0, 2.0]}],
            }
            for i in range(3)
        ]
    )
    for fd in fds:
        assert num_rows([fd]) == 3, fd.field_name


def test_float_vectors_go_through_numpy_without_loss() -> None:
    vecs = np.random.default_rng(0).standard_normal((1000, 128)).astype(np.float32)
    fd = schema_pb2.FieldData(field_name="v", type=DataType.FLOAT_VECTOR)
    fd.vectors.dim = 128
    fd.vectors.float_vector.data.extend(vecs.ravel().tolist())
    idx = np.arange(999, -1, -3)
    (out,) = take_rows([fd], idx)
    got = np.array(out.vectors.float_vector.data, dtype=np.float32).reshape(-1, 128)
    assert np.array_equal(got, vecs[idx])


# --- IDs -------------------------------------------------------------------------------


@SETTINGS
@given(
    data=st.data(),
    kind=st.sampled_from(["int", "str"]),
)
def test_ids_take_and_concat(data: st.DataObject, kind: str) -> None:
    values = st.integers(-(2**63), 2**63 - 1) if kind == "int" else st.text(max_size=4)

    def make(xs: list) -> schema_pb2.IDs:
        if kind == "int":
            return schema_pb2.IDs(int_id=schema_pb2.LongArray(data=xs))
        return schema_pb2.IDs(str_id=schema_pb2.StringArray(data=xs))

    a, b = (
        data.draw(st.lists(values, max_size=5)),
        data.draw(st.lists(values, max_size=5)),
    )
    ids = ids_concat([make(a), schema_pb2.IDs(), make(b)])
    assert ids_len(ids) == len(a) + len(b)
    assert list(ids_values(ids)) == a + b
    assert ids.WhichOneof("id_field") == f"{kind}_id"
    idx = data.draw(st.lists(st.integers(0, len(a + b) - 1), max_size=6)) if a + b else []
    taken = ids_take(ids, idx)
    assert list(ids_values(taken)) == [(a + b)[i] for i in idx]
    assert taken.WhichOneof("id_field") == f"{kind}_id"
    if kind == "int":
        assert isinstance(ids_values(ids), np.ndarray)


def test_ids_edge_cases() -> None:
    assert ids_len(schema_pb2.IDs()) == 0
    assert len(ids_values(schema_pb2.IDs())) == 0
    assert ids_concat([]) == schema_pb2.IDs()
    with pytest.raises(ValueError):
        ids_concat(
            [
                schema_pb2.IDs(int_id=schema_pb2.LongArray(data=[1])),
                schema_pb2.IDs(str_id=schema_pb2.StringArray(data=["a"])),
            ]
        )
    with pytest.raises(IndexError):
        ids_take(schema_pb2.IDs(int_id=schema_pb2.LongArray(data=[1])), [1])
