"""Write splitting and id order; missing columns as Milvus 2.3.5 fails them (offline)."""

from typing import Any

import numpy as np
import pytest
from pymilvus.grpc_gen import schema_pb2

from mishards.common.hashing import shard_of
from mishards.router.writes import mutation_result, split_rows_by_shard

INT_PK = schema_pb2.FieldSchema(name="pk", data_type=schema_pb2.Int64, is_primary_key=True)
STR_PK = schema_pb2.FieldSchema(name="pk", data_type=schema_pb2.VarChar, is_primary_key=True)


@pytest.mark.parametrize("shards", [1, 2, 3, 8])
def test_split_keeps_every_row_once_on_its_shard(shards: int) -> None:
    keys = np.random.default_rng(3).integers(-(2**40), 2**40, size=1000)
    parts = split_rows_by_shard(keys, shards)
    rows = np.concatenate(list(parts.values()))
    assert sorted(rows.tolist()) == list(range(1000))
    for shard, idx in parts.items():
        assert all(shard_of(int(keys[i]), shards) == shard for i in idx)
        assert list(idx) == sorted(idx)  # client order kept within a shard


def test_split_varchar_keys() -> None:
    keys = [f"k{i}" for i in range(200)]
    parts = split_rows_by_shard(keys, 3)
    assert sum(len(v) for v in parts.values()) == 200
    for shard, idx in parts.items():
        assert all(shard_of(keys[i], 3) == shard for i in idx)


def test_ids_come_back_in_client_row_order() -> None:
    keys = np.array([50, 3, 99, 7], dtype=np.int64)
    res = mutation_result(INT_PK, keys, timestamp=123, insert=4)
    assert list(res.IDs.int_id.data) == [50, 3, 99, 7]
    assert list(res.succ_index) == [0, 1, 2, 3] and res.insert_cnt == 4 and res.timestamp == 123
    res = mutation_result(STR_PK, ["b", "a"], timestamp=1, upsert=2)
    assert list(res.IDs.str_id.data) == ["b", "a"] and res.upsert_cnt == 2


# What Milvus 2.3.5 answered to raw InsertRequests lacking these columns (schema below).
MISSING_FIELD_ANSWERS = [
    (["pk"], 1100, "the number of fields is less than needed: invalid parameter[expected=7][actual=6]"),
    (["x"], 65535, "%!s(<nil>) is not supported now"),
    (
        ["v"],
        1100,
        "varchar field 'v' is illegal, array type mismatch: invalid parameter[expected=need string array][actual=got nil]",
    ),
    (
        ["b", "j"],
        1100,
        "json field 'j' is illegal, array type mismatch: invalid parameter[expected=need json array][actual=got nil]",
    ),
    (
        ["x", "vec"],
        1100,
        "float vector field 'vec' is illegal, array type mismatch: "
        "invalid parameter[expected=need float vector][actual=got nil]",
    ),
]


def _seven_field_view_and_columns(missing: list[str]) -> tuple[Any, list[schema_pb2.FieldData]]:
    from mishards.router.catalog import _view
    from mishards.v1 import meta_pb2

    def column(name: str, data_type: int) -> schema_pb2.FieldData:
        fd = schema_pb2.FieldData(field_name=name, type=data_type)
        if data_type == schema_pb2.FloatVector:
            fd.vectors.dim = 2
            fd.vectors.float_vector.data.extend([1.0, 2.0])
        elif data_type == schema_pb2.VarChar:
            fd.scalars.string_data.data.append("a")
        elif data_type == schema_pb2.JSON:
            fd.scalars.json_data.data.append(b"{}")
        elif data_type == schema_pb2.Bool:
            fd.scalars.bool_data.data.append(True)
        elif data_type == schema_pb2.Double:
            fd.scalars.double_data.data.append(1.0)
        else:
            fd.scalars.long_data.data.append(1)
        return fd

    types = {
        "pk": schema_pb2.Int64,
        "b": schema_pb2.Bool,
        "x": schema_pb2.Int64,
        "f": schema_pb2.Double,
        "v": schema_pb2.VarChar,
        "j": schema_pb2.JSON,
        "vec": schema_pb2.FloatVector,
    }
    schema = schema_pb2.CollectionSchema(name="c")
    for name, data_type in types.items():
        schema.fields.add(name=name, data_type=data_type, is_primary_key=name == "pk")
    schema.fields[-1].type_params.add(key="dim", value="2")
    schema.fields[4].type_params.add(key="max_length", value="8")  # Milvus requires it of a varchar
    view = _view(meta_pb2.Collection(name="c", schema=schema.SerializeToString()))
    view.message.partitions.append("_default")
    return view, [column(n, t) for n, t in types.items() if n not in missing]


@pytest.mark.parametrize(("missing", "code", "reason"), MISSING_FIELD_ANSWERS)
def test_a_missing_column_fails_as_milvus_2_3_5_fails(missing: list[str], code: int, reason: str) -> None:
    from mishards.common.errors import MilvusError
    from mishards.router.validation import validate_rows

    view, given = _seven_field_view_and_columns(missing)
    with pytest.raises(MilvusError) as caught:
        validate_rows(view, _insert(given), "milvus")
    assert (caught.value.code, caught.value.reason) == (code, reason)
    view, complete = _seven_field_view_and_columns([])
    validate_rows(view, _insert(complete), "milvus")  # every column: accepted


def _insert(columns: list[schema_pb2.FieldData]) -> Any:
    from pymilvus.grpc_gen import milvus_pb2

    request = milvus_pb2.InsertRequest(collection_name="c", num_rows=1)
    request.fields_data.extend(columns)
    return request


def test_a_dynamic_column_with_the_wrong_row_count_is_rejected_before_any_backend() -> None:
    from pymilvus.grpc_gen import milvus_pb2

    from mishards.common import errors
    from mishards.common.errors import MilvusError
    from mishards.router.catalog import _view
    from mishards.router.validation import validate_rows
    from mishards.v1 import meta_pb2

    schema = schema_pb2.CollectionSchema(name="c", enable_dynamic_field=True)
    schema.fields.add(name="pk", data_type=schema_pb2.Int64, is_primary_key=True)
    view = _view(meta_pb2.Collection(name="c", schema=schema.SerializeToString(), partitions=["_default"]))
    pk = schema_pb2.FieldData(type=schema_pb2.Int64, field_name="pk")
    pk.scalars.long_data.data.extend([1, 2, 3])
    meta = schema_pb2.FieldData(type=schema_pb2.JSON, field_name="$meta", is_dynamic=True)
    meta.scalars.json_data.data.extend([b"{}", b"{}"])
    request = milvus_pb2.InsertRequest(collection_name="c", num_rows=3, fields_data=[pk, meta])
    with pytest.raises(MilvusError) as caught:
        validate_rows(view, request, "milvus")
    assert caught.value.code == errors.PARAMETER_INVALID and "($meta)" in caught.value.reason
    meta.scalars.json_data.data.append(b"{}")
    request = milvus_pb2.InsertRequest(collection_name="c", num_rows=3, fields_data=[pk, meta])
    validate_rows(view, request, "milvus")  # three rows each: accepted
