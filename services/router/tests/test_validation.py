"""Write validation against the answers of real backends (offline).

Every case here was sent as raw gRPC to one Milvus 2.3.5 and one milvus-lite 3.2.2
(golden_writes.py holds their answers); the router's validation must give the same answer
for each dialect, or the documented one where the backend crashes or cannot be followed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from golden_writes import DELETES, WRITES
from pymilvus.grpc_gen import milvus_pb2
from pymilvus.grpc_gen import schema_pb2 as S

from mishards.common.errors import MilvusError
from mishards.router import validation
from mishards.router.catalog import CollectionView, _view
from mishards.v1 import meta_pb2

NAN = [0.1, float("nan"), 0, 0]


# --- collections as each backend describes them ------------------------------------------------------


def field(name: str, t: int, **params: Any) -> S.FieldSchema:
    f = S.FieldSchema(name=name, data_type=t)
    for key in ("is_primary_key", "autoID", "is_partition_key", "nullable", "element_type"):
        if key in params:
            setattr(f, key, params.pop(key))
    if "default" in params:
        default = params.pop("default")
        if isinstance(default, str):
            f.default_value.string_data = default
        else:
            f.default_value.long_data = default
    for key, value in params.items():
        f.type_params.add(key=key, value=str(value))
    return f


def pk(name: str = "id", t: int = S.Int64, **kw: Any) -> S.FieldSchema:
    if t == S.VarChar:
        kw.setdefault("max_length", 32)
    return field(name, t, is_primary_key=True, **kw)


def vec() -> S.FieldSchema:
    return field("vec", S.FloatVector, dim=4)


def _arrays() -> list[S.FieldSchema]:
    elems = [("ai64", S.Int64), ("ai32", S.Int32), ("ai8", S.Int8), ("ab", S.Bool), ("af", S.Float), ("ad", S.Double)]
    out = [field(n, S.Array, element_type=t, max_capacity=3) for n, t in elems]
    return out + [field("as", S.Array, element_type=S.VarChar, max_capacity=3, max_length=4)]


COLLECTIONS: dict[str, Callable[[str], list[S.FieldSchema]]] = {
    "bw_main": lambda d: [
        pk(),
        vec(),
        field("name", S.VarChar, max_length=8),
        field("arr", S.Array, element_type=S.Int64, max_capacity=3),
        field("js", S.JSON),
        field("f", S.Float),
    ],
    "bw_auto": lambda d: [pk(autoID=True), vec()],
    "bw_pkey": lambda d: [pk(), vec(), field("key", S.VarChar, max_length=16, is_partition_key=True)],
    "bw_dyn": lambda d: [pk(), vec()],
    "bw_vpk": lambda d: [pk("pk", S.VarChar), vec()],
    "bw_types": lambda d: [
        pk(),
        vec(),
        field("i8", S.Int8),
        field("i16", S.Int16),
        field("i32", S.Int32),
        field("b", S.Bool),
        field("d", S.Double),
        field("sa", S.Array, element_type=S.VarChar, max_capacity=3, max_length=4),
    ],
    "bw_arr": lambda d: [pk(), vec(), *_arrays()],
    "bw_def": lambda d: [
        pk(),
        vec(),
        field("n", S.Int64, default=7),
        field("s", S.VarChar, max_length=8, default="dflt"),
        field("x", S.Float, nullable=d == "lite"),  # Milvus 2.3.5 drops `nullable`
    ],
}


def view_of(name: str, dialect: str) -> CollectionView:
    schema = S.CollectionSchema(name=name, enable_dynamic_field=name == "bw_dyn")
    schema.fields.extend(COLLECTIONS[name](dialect))
    partitions = ["_default", "p1"] if name == "bw_main" else ["_default"]
    message = meta_pb2.Collection(name=name, schema=schema.SerializeToString(), partitions=partitions)
    return _view(message)


# --- columns, as the probes built them ----------------------------------------------------------------


def fd_int(name: str, vals: list[int], t: int = S.Int64) -> S.FieldData:
    fd = S.FieldData(type=t, field_name=name)
    (fd.scalars.long_data if t == S.Int64 else fd.scalars.int_data).data.extend(vals)
    return fd


def fd_str(name: str, vals: list[str]) -> S.FieldData:
    fd = S.FieldData(type=S.VarChar, field_name=name)
    fd.scalars.string_data.data.extend(vals)
    return fd


def fd_float(name: str, vals: list[float]) -> S.FieldData:
    fd = S.FieldData(type=S.Float, field_name=name)
    fd.scalars.float_data.data.extend(vals)
    return fd


def fd_double(name: str, vals: list[float]) -> S.FieldData:
    fd = S.FieldData(type=S.Double, field_name=name)
    fd.scalars.double_data.data.extend(vals)
    return fd


def fd_bool(name: str, vals: list[bool]) -> S.FieldData:
    fd = S.FieldData(type=S.Bool, field_name=name)
    fd.scalars.bool_data.data.extend(vals)
    return fd


def fd_vec(name: str, rows: list[list[float]], dim: int) -> S.FieldData:
    fd = S.FieldData(type=S.FloatVector, field_name=name)
    fd.vectors.dim = dim
    for r in rows:
        fd.vectors.float_vector.data.extend(r)
    return fd


def fd_arr(name: str, rows: list[list[Any]], elem: int = S.Int64) -> S.FieldData:
    fd = S.FieldData(type=S.Array, field_name=name)
    fd.scalars.array_data.element_type = elem
    for r in rows:
        sf = fd.scalars.array_data.data.add()
        if elem == S.Int64:
            sf.long_data.data.extend(r)
        elif elem in (S.Int8, S.Int16, S.Int32):
            sf.int_data.data.extend(r)
        elif elem == S.Float:
            sf.float_data.data.extend(r)
        else:
            sf.string_data.data.extend(r)
    return fd


def fd_arr_member(name: str, elem: int, member: str, values: list[Any]) -> S.FieldData:
    fd = S.FieldData(type=S.Array, field_name=name)
    fd.scalars.array_data.element_type = elem
    getattr(fd.scalars.array_data.data.add(), member).data.extend(values)
    return fd


def fd_json(name: str, vals: list[bytes]) -> S.FieldData:
    fd = S.FieldData(type=S.JSON, field_name=name)
    fd.scalars.json_data.data.extend(vals)
    return fd


def fd_dyn(vals: list[bytes], name: str = "$meta", flag: bool = True) -> S.FieldData:
    fd = S.FieldData(type=S.JSON, field_name=name, is_dynamic=flag)
    fd.scalars.json_data.data.extend(vals)
    return fd


def nulls(fd: S.FieldData, valid: list[bool]) -> S.FieldData:
    fd.valid_data.extend(valid)
    return fd


def good(ids: list[int], names: list[str] | None = None) -> list[S.FieldData]:
    n = len(ids)
    return [
        fd_int("id", ids),
        fd_vec("vec", [[0.1 * i + 0.01] * 4 for i in range(n)], 4),
        fd_str("name", names or ["ab"] * n),
        fd_arr("arr", [[1, 2]] * n),
        fd_json("js", [b'{"a":1}'] * n),
        fd_float("f", [1.0] * n),
    ]


def repl(cols: list[S.FieldData], name: str, new: S.FieldData) -> list[S.FieldData]:
    return [new if c.field_name == name else c for c in cols]


def drop(cols: list[S.FieldData], *names: str) -> list[S.FieldData]:
    return [c for c in cols if c.field_name not in names]


def ins(
    coll: str, cols: list[S.FieldData], n: int | None = None, part: str = "", upsert: bool = False
) -> tuple[str, Any]:
    if n is None:
        key = [c for c in cols if c.field_name in ("id", "pk")]
        s = key[0].scalars if key else None
        n = (len(s.long_data.data) or len(s.string_data.data) or len(s.float_data.data)) if s else 1
    request_type = milvus_pb2.UpsertRequest if upsert else milvus_pb2.InsertRequest
    request = request_type(collection_name=coll, partition_name=part, num_rows=n)
    request.fields_data.extend(cols)
    return coll, request


def tcols(i8: int = 1, i16: int = 1) -> list[S.FieldData]:
    return [
        fd_int("id", [1]),
        fd_vec("vec", [[0.1] * 4], 4),
        fd_int("i8", [i8], S.Int8),
        fd_int("i16", [i16], S.Int16),
        fd_int("i32", [1], S.Int32),
        fd_bool("b", [True]),
        fd_double("d", [1.0]),
        fd_arr("sa", [["ab"]], S.VarChar),
    ]


def acols(**over: S.FieldData) -> list[S.FieldData]:
    cols = [
        fd_int("id", [1]),
        fd_vec("vec", [[0.1] * 4], 4),
        fd_arr("ai64", [[1]]),
        fd_arr("ai32", [[1]], S.Int32),
        fd_arr("ai8", [[1]], S.Int8),
        fd_arr_member("ab", S.Bool, "bool_data", [True]),
        fd_arr("af", [[1.0]], S.Float),
        fd_arr_member("ad", S.Double, "double_data", [1.0]),
        fd_arr("as", [["ab"]], S.VarChar),
    ]
    return [over.get(c.field_name, c) for c in cols]


def _cases_main() -> dict[str, tuple[str, Any]]:
    g, g2 = good([1]), good([1, 2])
    return {
        "ok insert": ins("bw_main", good([100])),
        "unknown partition": ins("bw_main", g, part="nopart"),
        "unknown partition upsert": ins("bw_main", g, part="nopart", upsert=True),
        "unknown field": ins("bw_main", g + [fd_int("zzz", [1])]),
        "wrong type int->varchar": ins("bw_main", repl(g, "name", fd_int("name", [1]))),
        "wrong type float->int64 pk": ins("bw_main", repl(g, "id", fd_float("id", [1.0])), n=1),
        "wrong type varchar->json": ins("bw_main", repl(g, "js", fd_str("js", ['{"a":1}']))),
        "wrong type json->varchar": ins("bw_main", repl(g, "name", fd_json("name", [b'"a"']))),
        "wrong type str->arr": ins("bw_main", repl(g, "arr", fd_str("arr", ["x"]))),
        "wrong type double->float": ins("bw_main", repl(g, "f", fd_double("f", [1.0]))),
        "float field with vector label": ins("bw_main", repl(g, "f", fd_vec("f", [[1.0]], 1))),
        "zero rows + dup": ins("bw_main", good([]) + [fd_float("f", [])], n=0),
        "wrong type int64->float": ins("bw_main", repl(g, "f", fd_int("f", [1]))),
        "upsert missing f": ins("bw_main", drop(g, "f"), upsert=True),
        "zero rows": ins("bw_main", good([]), n=0),
        "num_rows 0 with data": ins("bw_main", g, n=0),
        "M unknown partition + zero rows": ins("bw_main", good([]), n=0, part="nopart"),
        "M zero rows + missing": ins("bw_main", drop(good([]), "f"), n=0),
        "type label lies: Int64 label, float slot": ins(
            "bw_main",
            repl(
                g,
                "f",
                S.FieldData(type=S.Int64, field_name="f", scalars=S.ScalarField(float_data=S.FloatArray(data=[1.0]))),
            ),
        ),
        "wrong dim 8": ins("bw_main", repl(g, "vec", fd_vec("vec", [[0.1] * 8], 8))),
        "wrong dim 6 label 4": ins("bw_main", repl(g, "vec", fd_vec("vec", [[0.1] * 6], 4))),
        "wrong dim 8 label 4": ins("bw_main", repl(g, "vec", fd_vec("vec", [[0.1] * 8], 4))),
        "vec as binary": ins(
            "bw_main",
            repl(
                g,
                "vec",
                S.FieldData(type=S.BinaryVector, field_name="vec", vectors=S.VectorField(dim=4, binary_vector=b"\x01")),
            ),
        ),
        "NaN": ins("bw_main", repl(g, "vec", fd_vec("vec", [NAN], 4))),
        "-Inf": ins("bw_main", repl(g, "vec", fd_vec("vec", [[0.1, float("-inf"), 0, 0]], 4))),
        "+Inf": ins("bw_main", repl(g, "vec", fd_vec("vec", [[0.1, float("inf"), 0, 0]], 4))),
        "NaN row 2": ins("bw_main", repl(g2, "vec", fd_vec("vec", [[0.1] * 4, NAN], 4))),
        "NaN in float scalar": ins("bw_main", repl(g, "f", fd_float("f", [float("nan")]))),
        "upsert NaN": ins("bw_main", repl(g, "vec", fd_vec("vec", [NAN], 4)), upsert=True),
        "varchar too long": ins("bw_main", good([1, 2], names=["ab", "abcdefghij"])),
        "varchar 5 e-acute (10 bytes)": ins("bw_main", good([1], names=["ééééé"])),
        "varchar 4 e-acute (8 bytes)": ins("bw_main", good([101], names=["éééé"])),
        "array over capacity": ins("bw_main", repl(g, "arr", fd_arr("arr", [[1, 2, 3, 4]]))),
        "array over capacity row1": ins("bw_main", repl(g2, "arr", fd_arr("arr", [[1], [1, 2, 3, 4]]))),
        "array wrong elem (str)": ins("bw_main", repl(g, "arr", fd_arr("arr", [["x"]], S.VarChar))),
        "array elem label str, long slot": ins(
            "bw_main", repl(g, "arr", fd_arr_member("arr", S.VarChar, "long_data", [1]))
        ),
        "array elem label long, float slot": ins("bw_main", repl(g, "arr", fd_arr("arr", [[1.5]], S.Float))),
        "array wrong elem over cap": ins("bw_main", repl(g, "arr", fd_arr("arr", [["a", "b", "c", "d"]], S.VarChar))),
        "bad json": ins("bw_main", repl(g, "js", fd_json("js", [b"{bad"]))),
        "json array": ins("bw_main", repl(g, "js", fd_json("js", [b"[1,2]"]))),
        "json scalar": ins("bw_main", repl(g, "js", fd_json("js", [b"3"]))),
        "json empty": ins("bw_main", repl(g, "js", fd_json("js", [b""]))),
        "json trailing": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":1} x']))),
        "json too long": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":"' + b"x" * 70000 + b'"}']))),
        "json null": ins("bw_main", repl(g, "js", fd_json("js", [b"null"]))),
        "json string": ins("bw_main", repl(g, "js", fd_json("js", [b'"s"']))),
        "json nan": ins("bw_main", repl(g, "js", fd_json("js", [b"NaN"]))),
        "json invalid utf8": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":"\xff"}']))),
        "json dup keys": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":1,"a":2}']))),
        "json deep": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":' * 10001 + b"1" + b"}" * 10001]))),
        "json bad unicode escape": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":"\\ud800"}']))),
        "json leading ws": ins("bw_main", repl(g, "js", fd_json("js", [b'  {"a":1}\n']))),
        "json control char in string": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":"x\x01y"}']))),
        "json big number": ins("bw_main", repl(g, "js", fd_json("js", [b'{"a":1e400}']))),
        "missing pk": ins("bw_main", g[1:], n=1),
        "upsert missing pk": ins("bw_main", g[1:], n=1, upsert=True),
        "missing f": ins("bw_main", drop(g, "f")),
        "missing arr": ins("bw_main", drop(g, "arr")),
        "missing vec": ins("bw_main", drop(g, "vec")),
        "dynamic when disabled": ins("bw_main", g + [fd_dyn([b'{"x":1}'])]),
        "dynamic empty when disabled": ins("bw_main", g + [fd_dyn([b"{}"])]),
        "dynamic $meta name no flag, disabled": ins("bw_main", g + [fd_dyn([b'{"x":1}'], flag=False)]),
        "dynamic flag other name, disabled": ins("bw_main", g + [fd_dyn([b'{"x":1}'], name="other")]),
        "num_rows 3 for 2": ins("bw_main", g2, n=3),
        "num_rows 1 for 2": ins("bw_main", g2, n=1),
        "no fields n=1": ins("bw_main", [], n=1),
        "dup field": ins("bw_main", g + [fd_float("f", [2.0])]),
        "dup pk field": ins("bw_main", g + [fd_int("id", [2])]),
        "main f null (non-nullable)": ins("bw_main", repl(g, "f", nulls(fd_float("f", []), [False]))),
    }


def _cases_multi() -> dict[str, tuple[str, Any]]:
    g, g2 = good([1]), good([1, 2])
    long_name = good([1], names=["abcdefghij"])
    nan_vec = fd_vec("vec", [NAN], 4)
    return {
        "M unknown partition + NaN": ins("bw_main", repl(g, "vec", nan_vec), part="nopart"),
        "M unknown partition + missing f": ins("bw_main", drop(g, "f"), part="nopart"),
        "M missing f + NaN": ins("bw_main", drop(repl(g, "vec", nan_vec), "f")),
        "M NaN then long varchar": ins("bw_main", repl(long_name, "vec", nan_vec)),
        "M long varchar then NaN (order)": ins("bw_main", list(reversed(repl(long_name, "vec", nan_vec)))),
        "M long varchar + arr cap": ins("bw_main", repl(long_name, "arr", fd_arr("arr", [[1, 2, 3, 4]]))),
        "M arr cap + long varchar (order)": ins(
            "bw_main", list(reversed(repl(long_name, "arr", fd_arr("arr", [[1, 2, 3, 4]]))))
        ),
        "M num_rows mismatch + NaN": ins("bw_main", repl(g2, "vec", fd_vec("vec", [[0.1] * 4, NAN], 4)), n=3),
        "M dim + long varchar": ins("bw_main", repl(long_name, "vec", fd_vec("vec", [[0.1] * 8], 8))),
        "M dup + missing": ins("bw_main", drop(g, "name") + [fd_float("f", [2.0])]),
        "M dyn disabled + unknown field": ins("bw_main", g + [fd_int("zzz", [1]), fd_dyn([b'{"x":1}'])]),
        "M unknown field + missing": ins("bw_main", drop(g, "f") + [fd_int("zzz", [1])]),
        "M unknown field + NaN": ins("bw_main", repl(g, "vec", nan_vec) + [fd_int("zzz", [1])]),
        "M wrong type + NaN": ins("bw_main", repl(repl(g, "vec", nan_vec), "name", fd_int("name", [1]))),
        "M bad json + long varchar": ins("bw_main", repl(long_name, "js", fd_json("js", [b"{bad"]))),
        "M NaN + num_rows mismatch other col": ins(
            "bw_main", repl(repl(g2, "vec", fd_vec("vec", [[0.1] * 4, NAN], 4)), "f", fd_float("f", [1.0])), n=2
        ),
        "M long varchar + num_rows short f": ins(
            "bw_main", repl(good([1, 2], names=["a", "abcdefghij"]), "f", fd_float("f", [1.0])), n=2
        ),
        "M upsert missing pk + NaN": ins("bw_main", repl(g, "vec", nan_vec)[1:], n=1, upsert=True),
        "M bad part name + NaN": ins("bw_main", repl(g, "vec", nan_vec), part="a-b"),
        "M bad part name + dup": ins("bw_main", g + [fd_float("f", [2.0])], part="a-b"),
        "M missing pk + unknown field": ins("bw_main", drop(g, "id") + [fd_int("zzz", [1])], n=1),
        "M missing vec + unknown field": ins("bw_main", drop(g, "vec") + [fd_int("zzz", [1])], n=1),
        "M missing f + long name (missing after)": ins("bw_main", drop(long_name, "f")),
        "M missing name + NaN": ins("bw_main", drop(repl(g, "vec", nan_vec), "name")),
        "M missing name + missing js": ins("bw_main", drop(g, "name", "js")),
        "M missing js + arr cap": ins("bw_main", drop(repl(g, "arr", fd_arr("arr", [[1, 2, 3, 4]])), "js")),
        "M missing f + num_rows short name": ins("bw_main", drop(repl(g2, "name", fd_str("name", ["a"])), "f"), n=2),
    }


def _cases_other() -> dict[str, tuple[str, Any]]:
    key = [fd_int("id", [1]), fd_vec("vec", [[0] * 4], 4), fd_str("key", ["a"])]
    dyn = [fd_int("id", [1]), fd_vec("vec", [[0] * 4], 4)]
    return {
        "pkey partition": ins("bw_pkey", key, part="_default"),
        "pkey partition upsert": ins("bw_pkey", key, part="_default", upsert=True),
        "pkey unknown partition": ins("bw_pkey", key, part="zz"),
        "pkey missing key": ins("bw_pkey", key[:2]),
        "M pkey part + NaN": ins("bw_pkey", [key[0], fd_vec("vec", [NAN], 4), key[2]], part="_default"),
        "M pkey part + missing key": ins("bw_pkey", key[:2], part="_default"),
        "M pkey part + dup": ins("bw_pkey", [key[0], *key], part="_default"),
        "M upsert pkey part + dup": ins("bw_pkey", [key[0], *key], part="_default", upsert=True),
        "pk on auto_id": ins("bw_auto", [fd_int("id", [5]), fd_vec("vec", [[0] * 4], 4)]),
        "upsert on auto_id with pk": ins("bw_auto", [fd_int("id", [5]), fd_vec("vec", [[0] * 4], 4)], upsert=True),
        "upsert on auto_id no pk": ins("bw_auto", [fd_vec("vec", [[0] * 4], 4)], n=1, upsert=True),
        "M pk auto + NaN": ins("bw_auto", [fd_int("id", [5]), fd_vec("vec", [NAN], 4)]),
        "unknown field dyn": ins("bw_dyn", [*dyn, fd_int("zzz", [1])]),
        "unknown field dyn + meta": ins("bw_dyn", [*dyn, fd_int("zzz", [1]), fd_dyn([b'{"x":1}'])]),
        "dyn array": ins("bw_dyn", [*dyn, fd_dyn([b"[1,2]"])]),
        "dyn bad json": ins("bw_dyn", [*dyn, fd_dyn([b"{bad"])]),
        "dyn $meta key": ins("bw_dyn", [*dyn, fd_dyn([b'{"$meta":1}'])]),
        "dyn static key": ins("bw_dyn", [*dyn, fd_dyn([b'{"id":"x"}'])]),
        "dyn flag other name": ins("bw_dyn", [*dyn, fd_dyn([b'{"x":1}'], name="other")]),
        "dyn two rows one bad": ins(
            "bw_dyn", [fd_int("id", [1, 2]), fd_vec("vec", [[0] * 4] * 2, 4), fd_dyn([b'{"a":1}', b"[1]"])]
        ),
        "dyn rows mismatch": ins(
            "bw_dyn", [fd_int("id", [1, 2]), fd_vec("vec", [[0] * 4] * 2, 4), fd_dyn([b'{"a":1}'])]
        ),
        "dyn too long": ins("bw_dyn", [*dyn, fd_dyn([b'{"a":"' + b"x" * 70000 + b'"}'])]),
        "dyn plain $meta name no flag": ins("bw_dyn", [*dyn, fd_dyn([b'{"x":1}'], flag=False)]),
        "dyn two flagged cols": ins("bw_dyn", [*dyn, fd_dyn([b'{"x":1}']), fd_dyn([b"[1]"], name="o2")]),
        "dyn null json": ins("bw_dyn", [*dyn, fd_dyn([b"null"])]),
        "M dyn bad + missing": ins("bw_dyn", [fd_int("id", [1]), fd_dyn([b"[1]"])], n=1),
        "M dyn bad + dup": ins("bw_dyn", [fd_int("id", [1]), *dyn, fd_dyn([b"[1]"])], n=1),
        "vpk too long": ins("bw_vpk", [fd_str("pk", ["x" * 40]), fd_vec("vec", [[0] * 4], 4)], n=1),
        "vpk empty": ins("bw_vpk", [fd_str("pk", [""]), fd_vec("vec", [[0] * 4], 4)], n=1),
        "vpk int": ins("bw_vpk", [fd_int("pk", [1]), fd_vec("vec", [[0] * 4], 4)], n=1),
        "i8 overflow": ins("bw_types", tcols(i8=300)),
        "i32 long slot": ins("bw_types", repl(tcols(), "i32", fd_int("i32", [1]))),
        "bool int slot": ins("bw_types", repl(tcols(), "b", fd_int("b", [1], S.Int32))),
        "M zero rows + dyn bad": ins("bw_dyn", [fd_int("id", []), fd_vec("vec", [], 4), fd_dyn([b"[1]"])], n=0),
        "M pkey part + zero rows": ins(
            "bw_pkey", [fd_int("id", []), fd_vec("vec", [], 4), fd_str("key", [])], n=0, part="_default"
        ),
        "M upsert pkey part + zero rows": ins(
            "bw_pkey", [fd_int("id", []), fd_vec("vec", [], 4), fd_str("key", [])], n=0, part="_default", upsert=True
        ),
        "i16 overflow": ins("bw_types", tcols(i16=70000)),
        "varchar array elem too long": ins("bw_types", repl(tcols(), "sa", fd_arr("sa", [["abcde"]], S.VarChar))),
        "types ok": ins("bw_types", repl(tcols(), "id", fd_int("id", [7]))),
    }


def _cases_arrays_defaults() -> dict[str, tuple[str, Any]]:
    base = [fd_int("id", [2]), fd_vec("vec", [[0] * 4], 4)]
    return {
        "arr ok": ins("bw_arr", acols()),
        "ai32 long rows": ins("bw_arr", acols(ai32=fd_arr("ai32", [[1]], S.Int64))),
        "ai8 overflow": ins("bw_arr", acols(ai8=fd_arr("ai8", [[300]], S.Int8))),
        "ai8 label int64 with int rows 300": ins("bw_arr", acols(ai8=fd_arr_member("ai8", S.Int64, "int_data", [300]))),
        "ab int rows": ins("bw_arr", acols(ab=fd_arr("ab", [[1]], S.Int32))),
        "af double rows": ins("bw_arr", acols(af=fd_arr_member("af", S.Double, "double_data", [1.0]))),
        "ad float rows": ins("bw_arr", acols(ad=fd_arr("ad", [[1.0]], S.Float))),
        "as long rows": ins("bw_arr", acols(**{"as": fd_arr("as", [[1]], S.Int64)})),
        "as label varchar, long slot rows": ins(
            "bw_arr", acols(**{"as": fd_arr_member("as", S.VarChar, "long_data", [1])})
        ),
        "as elem too long row1 idx1": ins("bw_arr", repl(acols(), "id", fd_int("id", [1, 2])), n=1),
        "ai64 empty row list (0 rows)": ins("bw_arr", acols(ai64=fd_arr("ai64", []))),
        "ai64 label varchar, empty str rows": ins("bw_arr", acols(ai64=fd_arr("ai64", [[]], S.VarChar))),
        "M ai64 over cap + ai32 wrong (col order)": ins(
            "bw_arr", acols(ai64=fd_arr("ai64", [[1, 2, 3, 4]]), ai32=fd_arr("ai32", [[1]], S.Int64))
        ),
        "M ai64 wrong + over cap": ins("bw_arr", acols(ai64=fd_arr("ai64", [[1.0, 2.0, 3.0, 4.0]], S.Float))),
        "def missing n,s,x": ins("bw_def", [fd_int("id", [1]), base[1]]),
        "def given all": ins("bw_def", [*base, fd_int("n", [1]), fd_str("s", ["a"]), fd_float("x", [1.0])]),
        "def s too long": ins("bw_def", [fd_int("id", [3]), base[1], fd_str("s", ["abcdefghij"])]),
        "def n,s given empty slots": ins(
            "bw_def", [*base, fd_int("n", []), fd_str("s", []), fd_float("x", [1.0])], n=1
        ),
        "def x full form null": ins(
            "bw_def", [*base, fd_int("n", [1]), fd_str("s", ["a"]), nulls(fd_float("x", [2.0]), [False])]
        ),
        "def x null compact": ins(
            "bw_def", [*base, fd_int("n", [1]), fd_str("s", ["a"]), nulls(fd_float("x", []), [False])]
        ),
        "def n null (non-nullable, default)": ins(
            "bw_def", [*base, nulls(fd_int("n", []), [False]), fd_str("s", ["a"]), fd_float("x", [1.0])]
        ),
    }


CASES = {**_cases_main(), **_cases_multi(), **_cases_other(), **_cases_arrays_defaults()}

# Where the router answers otherwise than the backend, on purpose (docs/compatibility.md).
LONG_INT = "field 'f' is illegal, array type mismatch: invalid parameter[expected=need float32 array][actual=got nil]"
DEVIATIONS: dict[tuple[str, str], Any] = {
    # Milvus 2.3.5 takes a scalar in another type's member, then its querynode dies (SIGSEGV seen for Int64)
    ("type label lies: Int64 label, float slot", "milvus"): "OK",  # the member is the schema's: taken
    ("wrong type double->float", "milvus"): (1100, 5, LONG_INT),
    ("float field with vector label", "milvus"): (1100, 5, LONG_INT),
    # 2.3.5 panics on the missing columns with defaults; the router fills them, and x has none
    ("def missing n,s,x", "milvus"): (65535, 1, "%!s(<nil>) is not supported now"),
    ("wrong type int64->float", "milvus"): (1100, 5, LONG_INT),
    ("i32 long slot", "milvus"): (
        1100,
        5,
        "field 'i32' is illegal, array type mismatch: invalid parameter[expected=need int array][actual=got nil]",
    ),
    ("bool int slot", "milvus"): (
        1100,
        5,
        "field 'b' is illegal, array type mismatch: invalid parameter[expected=need bool array][actual=got nil]",
    ),
    # milvus-lite merges an upsert with the stored row; the router cannot, so every field is needed
    ("upsert missing f", "lite"): (6, 6, "field 'f' missing and not nullable / no default"),
}


def answer(dialect: str, name: str) -> Any:
    coll, request = CASES[name]
    view = view_of(coll, dialect)
    try:
        validation.validate_rows(view, request, dialect)
    except MilvusError as exc:
        st = exc.to_status()
        return (st.code, st.error_code, st.reason)
    return "OK"


@pytest.mark.parametrize("dialect", ["milvus", "lite"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_answers_as_the_backend(dialect: str, name: str) -> None:
    expected = DEVIATIONS.get((name, dialect), WRITES.get(name, {}).get(dialect))
    if expected is None:
        pytest.skip(f"{dialect} gave no answer to {name!r} (it crashed on an earlier case)")
    assert answer(dialect, name) == expected


def test_every_probed_write_is_a_case() -> None:
    probed = {name for name in WRITES if not name.endswith("unknown collection")}
    assert probed <= set(CASES)


@pytest.mark.parametrize(
    ("name", "dialect"),
    [
        ("insert unknown collection", "milvus"),
        ("insert unknown collection", "lite"),
        ("upsert unknown collection", "lite"),
    ],
)
def test_an_unknown_collection_is_worded_as_the_backend_words_it(name: str, dialect: str) -> None:
    st = validation.collection_not_found("nope", "default", "Insert", dialect).to_status()
    assert (st.code, st.error_code, st.reason) == WRITES[name][dialect]
    st = validation.collection_not_found("nope", "default", "Delete", dialect).to_status()
    assert (st.code, st.error_code, st.reason) == DELETES["unknown collection"][dialect]


# --- where Milvus 2.3.5 crashes: the router refuses, or fills defaults as later Milvus does ---------------


def _milvus_error(name: str, cols: list[S.FieldData], n: int | None = None) -> tuple[int, int, str] | str:
    coll, request = ins(name, cols, n=n)
    try:
        validation.validate_rows(view_of(coll, "milvus"), request, "milvus")
    except MilvusError as exc:
        st = exc.to_status()
        return (st.code, st.error_code, st.reason)
    return "OK"


DIM_4_0 = "the dim (0) of field data(vec) is not equal to schema dim (4): invalid parameter[expected=4][actual=0]"
DIM_4_8 = "the dim (8) of field data(vec) is not equal to schema dim (4): invalid parameter[expected=4][actual=8]"


@pytest.mark.parametrize(
    ("what", "cols", "expected"),
    [
        # accepted by 2.3.5, whose datanode then dies on every restart ("dim(0) should be greater than 0")
        ("vector dim 0", repl(good([2]), "vec", fd_vec("vec", [[0.1] * 4], 0)), (1100, 5, DIM_4_0)),
        # accepted by 2.3.5, whose proxy then panics (slice bounds out of range)
        (
            "2 rows of 8 floats labelled dim 8",
            repl(good([3, 4]), "vec", fd_vec("vec", [[0.1] * 8], 8)),
            (1100, 5, DIM_4_8),
        ),
        # an Int64 column in float_data: the querynode segfaults on it
        (
            "int64 key in string_data",
            repl(good([1]), "id", fd_str("id", ["x"])),
            (
                1100,
                5,
                "field 'id' is illegal, array type mismatch: invalid parameter[expected=need long int array][actual=got nil]",
            ),
        ),
        # an array row with no member: 2.3.5 dereferences a nil type
        (
            "array row without member",
            repl(good([1]), "arr", fd_arr_member("arr", S.Int64, "long_data", [])),
            "OK",
        ),
    ],
)
def test_what_crashes_milvus_2_3_5_is_refused(what: str, cols: list[S.FieldData], expected: Any) -> None:
    assert _milvus_error("bw_main", cols) == expected


def test_an_array_row_without_a_member_is_refused_before_milvus_2_3_5_panics() -> None:
    arr = S.FieldData(type=S.Array, field_name="arr")
    arr.scalars.array_data.element_type = S.Int64
    arr.scalars.array_data.data.add()  # no member set
    expected = "insert data does not match: invalid parameter[expected=int64 array][actual=nil array]"
    assert _milvus_error("bw_main", repl(good([1]), "arr", arr)) == (1100, 5, expected)


def test_missing_columns_with_defaults_are_filled_on_milvus_2_3_5() -> None:
    """2.3.5's proxy panics on a missing column that has a default; the router fills it."""
    coll, request = ins("bw_def", [fd_int("id", [1, 2]), fd_vec("vec", [[0.0] * 4] * 2, 4), fd_float("x", [1.0, 2.0])])
    rows = validation.validate_rows(view_of(coll, "milvus"), request, "milvus")
    by_name = {fd.field_name: fd for fd in rows.fields_data}
    assert list(by_name["n"].scalars.long_data.data) == [7, 7]
    assert list(by_name["s"].scalars.string_data.data) == ["dflt", "dflt"]
    assert list(rows.keys) == [1, 2]
    # an empty column with a default is filled too (2.3.5 fills it itself; the router splits rows by shard)
    coll, request = ins(
        "bw_def",
        [fd_int("id", [3]), fd_vec("vec", [[0.0] * 4], 4), fd_int("n", []), fd_str("s", []), fd_float("x", [1.0])],
        n=1,
    )
    rows = validation.validate_rows(view_of(coll, "milvus"), request, "milvus")
    by_name = {fd.field_name: fd for fd in rows.fields_data}
    assert list(by_name["n"].scalars.long_data.data) == [7]
    # a missing column without one still fails as 2.3.5 fails it
    coll, request = ins("bw_def", [fd_int("id", [1]), fd_vec("vec", [[0.0] * 4], 4)])
    with pytest.raises(MilvusError, match=r"%!s\(<nil>\) is not supported now"):
        validation.validate_rows(view_of(coll, "milvus"), request, "milvus")


def test_valid_data_is_dropped_for_milvus_2_3_5_which_ignores_it() -> None:
    coll, request = ins(
        "bw_def",
        [
            fd_int("id", [8]),
            fd_vec("vec", [[0.0] * 4], 4),
            fd_int("n", [1]),
            fd_str("s", ["a"]),
            nulls(fd_float("x", [2.0]), [False]),
        ],
    )
    rows = validation.validate_rows(view_of(coll, "milvus"), request, "milvus")
    assert all(not len(fd.valid_data) for fd in rows.fields_data)


# --- keys ------------------------------------------------------------------------------------------------


def test_auto_id_rows_get_allocated_keys() -> None:
    coll, request = ins("bw_auto", [fd_vec("vec", [[0.0] * 4] * 3, 4)], n=3)
    rows = validation.validate_rows(view_of(coll, "milvus"), request, "milvus")
    assert rows.ids_needed == 3 and rows.keys is None
    rows.assign_ids(np.array([10, 11, 12]))
    assert list(rows.keys) == [10, 11, 12] and rows.ids_needed == 0
    assert [list(fd.scalars.long_data.data) for fd in rows.fields_data if fd.field_name == "id"] == [[10, 11, 12]]


def test_milvus_lite_keeps_given_keys_on_auto_id_and_generates_null_ones() -> None:
    key = nulls(fd_int("id", [5]), [True, False])
    coll, request = ins("bw_auto", [key, fd_vec("vec", [[0.0] * 4] * 2, 4)], n=2)
    rows = validation.validate_rows(view_of(coll, "lite"), request, "lite")
    assert rows.ids_needed == 1
    rows.assign_ids([99])
    assert list(rows.keys) == [5, 99]


def test_milvus_lite_writes_nothing_for_zero_rows() -> None:
    coll, request = ins("bw_main", good([1]), n=0, part="nopart")
    rows = validation.validate_rows(view_of(coll, "lite"), request, "lite")
    assert rows.num_rows == 0 and rows.fields_data == []


def test_milvus_lite_null_rows_are_refused_only_where_not_nullable() -> None:
    ok = ins(
        "bw_def",
        [fd_int("id", [1, 2]), fd_vec("vec", [[0.0] * 4] * 2, 4), nulls(fd_float("x", [1.0]), [False, True])],
        n=2,
    )
    validation.validate_rows(view_of("bw_def", "lite"), ok[1], "lite")
    bad = ins("bw_def", [nulls(fd_int("id", [1]), [True, False]), fd_vec("vec", [[0.0] * 4] * 2, 4)], n=2)
    with pytest.raises(MilvusError, match=r"primary key 'id' missing or None") as caught:
        validation.validate_rows(view_of("bw_def", "lite"), bad[1], "lite")
    assert caught.value.code == 6


# --- deletes ----------------------------------------------------------------------------------------------


def _delete(dialect: str, coll: str, expr: str, partition: str = "") -> Any:
    view = view_of(coll, dialect)
    request = milvus_pb2.DeleteRequest(collection_name=coll, expr=expr, partition_name=partition)
    try:
        return validation.validate_delete(view, request, dialect)
    except MilvusError as exc:
        st = exc.to_status()
        return (st.code, st.error_code, st.reason)


PROBED_EXPRESSIONS = [name for name in DELETES if name.startswith(("unl int ", "vunl str "))]


@pytest.mark.parametrize("name", PROBED_EXPRESSIONS)
def test_delete_keys_are_read_where_milvus_2_3_5_reads_them(name: str) -> None:
    """2.3.5 deletes by keys without a query (so even when unloaded) exactly when it reads the
    expression as keys; the router then names the same keys, and goes the query way otherwise."""
    expr = ast_literal(name)
    coll = "bw_main" if name.startswith("unl int ") else "bw_vpk"
    answer = DELETES[name]["milvus"]
    keys = _delete("milvus", coll, expr)
    if isinstance(answer, tuple) and answer[0] == "OK":
        assert isinstance(keys, list) and len(keys) == answer[2], (expr, keys)
    else:
        assert keys is None, (expr, keys)


@pytest.mark.parametrize("name", PROBED_EXPRESSIONS)
def test_delete_keys_are_read_as_milvus_lite_reads_them(name: str) -> None:
    expr = ast_literal(name)
    coll = "bw_main" if name.startswith("unl int ") else "bw_vpk"
    answer = DELETES[name]["lite"]
    got = _delete("lite", coll, expr)
    if answer[0] == "OK" and answer[1]:
        assert got == answer[1]  # milvus-lite answers with the keys it read
    elif answer[0] == "OK":
        assert got in (None, []) or " == " in expr  # resolved by a query (a `==` key deletes the same rows)
    elif answer[0] == 1:
        assert got == answer  # pyarrow refused the keys: so does the router
    else:
        assert got is None  # milvus-lite's query reports the expression's error


def ast_literal(name: str) -> str:
    import ast

    return str(ast.literal_eval(name.split(" ", 2)[2]))


@pytest.mark.parametrize(
    ("name", "coll", "expr", "partition"),
    [
        ("unknown partition", "bw_main", "id in [1]", "nopart"),
        ("unknown partition + bad expr", "bw_main", "id in [1,", "nopart"),
        ("unknown partition + non-pk expr", "bw_main", "f > 1", "nopart"),
        ("pkey partition", "bw_pkey", "id in [1]", "_default"),
        ("pkey unknown partition", "bw_pkey", "id in [1]", "zz"),
        ("pkey partition + bad expr", "bw_pkey", "id in [1,", "_default"),
        ("bad partition name chars", "bw_main", "id in [1]", "a-b"),
        ("empty expr + unknown partition", "bw_main", "", "nopart"),
        ("empty expr + pkey partition", "bw_pkey", "", "_default"),
    ],
)
@pytest.mark.parametrize("dialect", ["milvus", "lite"])
def test_delete_partitions_are_checked_as_the_backend_checks_them(
    name: str, coll: str, expr: str, partition: str, dialect: str
) -> None:
    answer = DELETES[name][dialect]
    got = _delete(dialect, coll, expr, partition)
    if answer == "OK" or answer[0] == "OK":
        assert not (isinstance(got, tuple) and isinstance(got[0], int)), got
    elif answer[0] in (6,) or (dialect == "lite" and answer[0] == 200 and not isinstance(got, list)):
        # resolved by a query first (milvus-lite checks the partition once it has keys)
        assert got is None or got == answer
    else:
        assert got == answer


def test_milvus_lite_checks_a_delete_partition_once_keys_are_known() -> None:
    view = view_of("bw_main", "lite")
    request = milvus_pb2.DeleteRequest(collection_name="bw_main", expr="f > 1", partition_name="nopart")
    validation.check_delete_partition(view, request, [], "lite")  # nothing to delete: no check
    with pytest.raises(MilvusError) as caught:
        validation.check_delete_partition(view, request, [3], "lite")
    assert (caught.value.code, caught.value.reason) == (200, "nopart")
    validation.check_delete_partition(view, request, [3], "milvus")  # 2.3.5 checked it up front


ARROW_TYPES = ["int8", "int16", "int32", "int64", "float32", "double", "string", "bool"]
ARROW_VALUES: list[Any] = [1, -1, 300, 70000, 2**24 + 1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 1.5, 2.0, float("nan"),
                           float("inf"), 1e30, 3e9, True, "x", "1", {"a": 1}, [1], None, "\ud800"]  # fmt: skip


@pytest.mark.parametrize("target", ARROW_TYPES)
def test_pyarrow_conversion_errors_are_replayed(target: str) -> None:
    """milvus-lite stores rows through pyarrow; its refusals reach clients as code 1."""
    pa = pytest.importorskip("pyarrow")
    from mishards.router.validation_lite import arrow_error

    types = {"float32": pa.float32(), "double": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
    arrow_type = types.get(target) or getattr(pa, target)()
    for value in ARROW_VALUES:
        try:
            pa.array([value], type=arrow_type)
            expected = None
        except Exception as exc:  # pyarrow's ArrowInvalid, ArrowTypeError, OverflowError, UnicodeEncodeError
            expected = str(exc)
        assert arrow_error(value, target) == expected, (target, value)


LONG_NAME = "p" * 256
PARTITION_NAMES: list[tuple[str, Any, Any]] = [
    # name, Milvus 2.3.5's answer to an insert (a delete prefixes not-found with "Failed to get partition id: ")
    ("1p", (200, 15, "partition not found[partition=1p]"), None),
    ("  ", (65535, 1, "Invalid partition name: . Partition name should not be empty."), None),
    (" p1 ", (200, 15, "partition not found[partition= p1 ]"), None),
    (
        LONG_NAME,
        (
            65535,
            1,
            f"Invalid partition name: {LONG_NAME}. The length of a partition name must be less than 255 characters.",
        ),
        None,
    ),
    (
        "é",
        (
            65535,
            1,
            "Invalid partition name: é. The first character of a partition name must be an underscore or letter.",
        ),
        None,
    ),
    (
        "a-b",
        (65535, 1, "Invalid partition name: a-b. Partition name can only contain numbers, letters and underscores."),
        None,
    ),
    ("_x", (200, 15, "partition not found[partition=_x]"), None),
]


@pytest.mark.parametrize(("partition", "milvus", "unused"), PARTITION_NAMES)
def test_partition_names_are_checked_as_each_backend_checks_them(partition: str, milvus: Any, unused: Any) -> None:
    for dialect, expected in (("milvus", milvus), ("lite", (200, 200, partition))):
        coll, request = ins("bw_main", good([1]), part=partition)
        try:
            validation.validate_rows(view_of(coll, dialect), request, dialect)
            got: Any = "OK"
        except MilvusError as exc:
            st = exc.to_status()
            got = (st.code, st.error_code, st.reason)
        assert got == expected
        deleted = _delete(dialect, "bw_main", "id in [1]", partition)
        if dialect == "milvus" and expected[0] == 200:
            expected = (200, 15, "Failed to get partition id: " + expected[2])
        assert deleted == expected


def test_milvus_lite_function_outputs_need_not_be_sent() -> None:
    """milvus-lite computes function outputs (BM25 sparse, text embeddings) before its checks."""
    schema = S.CollectionSchema(name="fn")
    schema.fields.extend([pk(), field("text", S.VarChar, max_length=64), field("vec", S.FloatVector, dim=4)])
    schema.fields[-1].is_function_output = True
    fn = schema.functions.add(name="embed", type=S.FunctionType.TextEmbedding)
    fn.input_field_names.append("text")
    fn.output_field_names.append("vec")
    view = _view(meta_pb2.Collection(name="fn", schema=schema.SerializeToString(), partitions=["_default"]))
    request = milvus_pb2.InsertRequest(
        collection_name="fn", num_rows=1, fields_data=[fd_int("id", [1]), fd_str("text", ["hi"])]
    )
    rows = validation.validate_rows(view, request, "lite")
    assert list(rows.keys) == [1]
    sparse = S.CollectionSchema(name="bm")
    sparse.fields.extend([pk(), field("text", S.VarChar, max_length=64), field("sp", S.SparseFloatVector)])
    bm25 = sparse.functions.add(name="bm25", type=S.FunctionType.BM25)
    bm25.input_field_names.append("text")
    bm25.output_field_names.append("sp")
    view = _view(meta_pb2.Collection(name="bm", schema=sparse.SerializeToString(), partitions=["_default"]))
    validation.validate_rows(view, request, "lite")
    given = milvus_pb2.InsertRequest(
        collection_name="bm",
        num_rows=1,
        fields_data=[
            *request.fields_data,
            S.FieldData(
                type=S.SparseFloatVector,
                field_name="sp",
                vectors=S.VectorField(sparse_float_vector=S.SparseFloatArray(contents=[b""])),
            ),
        ],
    )
    with pytest.raises(MilvusError, match="BM25 output field 'sp' is generated; provide its source text instead"):
        validation.validate_rows(view, given, "lite")


# --- found by the fuzzer (tests/integration/test_fuzz.py) ---------------------------------------------


@pytest.mark.parametrize("num_rows", [2**32 - 1, 2**31])
def test_a_huge_num_rows_on_a_dynamic_collection_is_refused_without_building_its_rows(num_rows: int) -> None:
    """Milvus 2.3.5 fills `{}` for every row of num_rows before checkAligned; the router must not (100+ GB)."""
    ids = [1, 2]
    cols = [fd_int("id", ids), fd_vec("vec", [[0.1] * 4, [0.2] * 4], 4)]
    assert _milvus_error("bw_dyn", cols, n=num_rows) == (
        1100,
        5,
        f"the num_rows (2) of field (id) is not equal to passed num_rows ({num_rows}): invalid parameter"
        f"[expected={num_rows}][actual={num_rows}]",
    )
