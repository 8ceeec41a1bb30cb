"""milvus-lite's write checks, in its order, with its codes and messages.

milvus-lite 3.2.2 is pure Python: its servicer turns the columns into records
(adapter/grpc/translators/records.py), its engine checks each record in turn
(schema/validation.py `validate_record`), then the partition, then pyarrow builds the
write-ahead batch (engine/collection.py), whose conversion errors reach the client as code 1.
The router replays those steps on the columns (per row only for JSON, arrays and columns a
dynamic field rewrote), and picks the error milvus-lite would meet first: the first failing
column while reading, then the first failing record (checks in record order), then the
partition, then the first column pyarrow cannot convert (schema order).

Not replayed: GEOMETRY and TIMESTAMPTZ parsing, text-embedding functions, and, for an
upsert, milvus-lite's merge with the stored row (an upsert must carry every field here;
see docs/compatibility.md).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.router import literals
from mishards.router.catalog import CollectionView
from mishards.router.validation import META, Rows

S = schema_pb2
SCHEMA_ERROR = 6  # SchemaValidationError and filter errors: code 6, legacy 6
MISSING: Any = object()  # a record without the key

_TYPE_NAMES = {
    1: "Bool", 2: "Int8", 3: "Int16", 4: "Int32", 5: "Int64", 10: "Float", 11: "Double", 20: "String",
    21: "VarChar", 22: "Array", 23: "JSON", 24: "Geometry", 25: "Text", 26: "Timestamptz", 100: "BinaryVector",
    101: "FloatVector", 102: "Float16Vector", 103: "BFloat16Vector", 104: "SparseFloatVector", 105: "Int8Vector",
}  # fmt: skip
_SCALAR_SLOTS = {
    1: "bool_data", 2: "int_data", 3: "int_data", 4: "int_data", 5: "long_data", 10: "float_data",
    11: "double_data", 21: "string_data", 23: "json_data", 24: "geometry_wkt_data", 26: "string_data",
}  # fmt: skip
# milvus-lite's DataType names (its messages print `DataType.VARCHAR`)
_LITE_NAMES = {
    S.Bool: "BOOL", S.Int8: "INT8", S.Int16: "INT16", S.Int32: "INT32", S.Int64: "INT64", S.Float: "FLOAT",
    S.Double: "DOUBLE", S.VarChar: "VARCHAR", S.JSON: "JSON", S.Array: "ARRAY", S.Geometry: "GEOMETRY",
    S.Timestamptz: "TIMESTAMPTZ", S.FloatVector: "FLOAT_VECTOR", S.SparseFloatVector: "SPARSE_FLOAT_VECTOR",
}  # fmt: skip
_INT_RANGES = {S.Int8: 7, S.Int16: 15, S.Int32: 31, S.Int64: 63}
# the pyarrow type each Milvus type is stored as
_ARROW = {
    S.Bool: "bool", S.Int8: "int8", S.Int16: "int16", S.Int32: "int32", S.Int64: "int64", S.Float: "float32",
    S.Double: "double", S.VarChar: "string", S.JSON: "string", S.Geometry: "string",
}  # fmt: skip


def schema_error(message: str) -> MilvusError:
    return MilvusError(SCHEMA_ERROR, message, SCHEMA_ERROR)


def unexpected(message: str) -> MilvusError:
    """An exception milvus-lite does not classify: code 1 and no legacy code."""
    return MilvusError(errors.SERVICE_NOT_READY, message, errors.NO_LEGACY)


def collection_not_found(name: str) -> MilvusError:
    return MilvusError(errors.COLLECTION_NOT_FOUND, f"collection {name!r} does not exist")


def partition_not_found(name: str) -> MilvusError:
    return MilvusError(errors.PARTITION_NOT_FOUND, name, errors.PARTITION_NOT_FOUND)


@dataclass
class _Column:
    """One record key across the rows: a list (MISSING where a row lacks it), or a float
    vector matrix; `source` is the member it was read from, "" once rows were rewritten."""

    values: Any
    source: str
    nulls: np.ndarray | None = None  # rows that are None (valid_data)

    def value(self, i: int) -> Any:
        if self.nulls is not None and self.nulls[i]:
            return None
        v = self.values[i]
        return v.tolist() if isinstance(v, np.ndarray) else v

    def as_list(self, n: int) -> list[Any]:
        if self.nulls is None and isinstance(self.values, list):
            return self.values
        return [self.value(i) for i in range(n)]


def rows(view: CollectionView, request: Any, upsert: bool) -> Rows:
    """An insert or upsert checked as milvus-lite checks it."""
    n = request.num_rows
    pk = view.pk_field
    if n == 0:  # milvus-lite reads nothing and writes nothing
        return Rows(fields_data=[], num_rows=0, pk=pk, keys=[])
    columns = read_columns(request.fields_data, n)
    _check_function_outputs(view, columns, n)
    missing_keys = _missing_keys(pk, columns, n) if pk.autoID else None
    RecordCheck(view, columns, n, missing_keys).run()
    partition_key = any(f.is_partition_key for f in view.schema.fields)
    partition = request.partition_name or "_default"
    if not partition_key and partition not in view.message.partitions:
        raise partition_not_found(partition)
    _check_arrow(view, columns, n)
    result = Rows(fields_data=list(request.fields_data), num_rows=n, pk=pk)
    keys = columns[pk.name].as_list(n) if pk.name in columns else [None] * n
    if pk.data_type == S.Int64:
        result.keys = np.asarray([k if isinstance(k, int) else 0 for k in keys], dtype=np.int64)
    else:
        result.keys = keys
    if missing_keys is not None and len(missing_keys):
        result.missing_keys = missing_keys
    return result


# --- reading the columns (fields_data_to_records) ----------------------------------------------------


def read_columns(fields_data: Iterable[schema_pb2.FieldData], n: int) -> dict[str, _Column]:
    """The records' keys, column by column, as milvus-lite builds its records."""
    columns: dict[str, _Column] = {}
    for fd in fields_data:
        column = _read(fd, n)
        if fd.is_dynamic or fd.field_name == META:
            _merge_dynamic(columns, column, n)
        else:
            columns[fd.field_name] = column
    return columns


def _read(fd: schema_pb2.FieldData, n: int) -> _Column:
    kind = fd.WhichOneof("field")
    if kind == "vectors":
        return _read_vectors(fd, n)
    if kind != "scalars":
        raise schema_error(f"FieldData {fd.field_name!r} has neither scalars nor vectors")
    values, source = _read_scalars(fd)
    valid = list(fd.valid_data)
    if not valid:
        if len(values) != n:
            raise schema_error(f"FieldData {fd.field_name!r} has {len(values)} rows, expected {n}")
        return _Column(values, source)
    if len(valid) != n:
        raise schema_error(f"FieldData {fd.field_name!r} valid_data length {len(valid)} != num_rows {n}")
    nulls = ~np.asarray(valid, dtype=bool)
    present = int(n - nulls.sum())
    if len(values) == present:
        expanded: list[Any] = [None] * n
        for i, v in zip(np.flatnonzero(~nulls).tolist(), values):
            expanded[i] = v
        return _Column(expanded, source, nulls)
    if len(values) == n:
        return _Column(values, source, nulls)
    raise schema_error(
        f"FieldData {fd.field_name!r} has {len(values)} values but valid_data expects {present} non-null or {n} total"
    )


def _read_scalars(fd: schema_pb2.FieldData) -> tuple[list[Any], str]:
    t = fd.type
    scalars = fd.scalars
    if t == S.Array:
        return [_array_row(row) for row in scalars.array_data.data], "array_data"
    if t in (S.Geometry, S.Timestamptz):
        member = "geometry_wkt_data" if t == S.Geometry else "timestamptz_data"
        for name in (member, "string_data"):
            if scalars.WhichOneof("data") == name:
                return list(getattr(scalars, name).data), name
        return [], member
    if t not in _SCALAR_SLOTS:
        name = _TYPE_NAMES.get(t, f"Unknown({t})")
        raise schema_error(f"FieldData {fd.field_name!r} uses scalar type {name} which MilvusLite does not support")
    slot = _SCALAR_SLOTS[t]
    raw = list(getattr(scalars, slot).data)
    if t == S.JSON:
        return [_json_value(b) for b in raw], "json"
    return raw, slot


def _array_row(row: schema_pb2.ScalarField) -> list[Any]:
    member = row.WhichOneof("data")
    if member in ("long_data", "int_data", "float_data", "double_data", "string_data", "bool_data"):
        return list(getattr(row, member).data)
    return []


def _json_value(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise unexpected(str(exc)) from None
    try:
        return json.loads(text)
    except ValueError:  # milvus-lite keeps text that is not JSON as a string
        return text
    except RecursionError as exc:
        raise unexpected(str(exc)) from None


def _read_vectors(fd: schema_pb2.FieldData, n: int) -> _Column:
    name = fd.field_name
    vectors = fd.vectors
    if fd.type == S.SparseFloatVector:
        return _read_sparse(fd, n)
    if fd.type != S.FloatVector:
        kind = _TYPE_NAMES.get(fd.type, f"Unknown({fd.type})")
        raise schema_error(
            f"FieldData {name!r} uses vector type {kind} which MilvusLite does not support "
            "(supported: FloatVector, SparseFloatVector)"
        )
    if vectors.WhichOneof("data") != "float_vector":
        raise schema_error(f"FieldData {name!r} declared FloatVector but no float_vector data is set")
    dim = vectors.dim
    if dim <= 0:
        raise schema_error(f"FieldData {name!r} has invalid dim {dim}")
    flat = np.asarray(vectors.float_vector.data, dtype=np.float32)
    if len(flat) == n * dim:
        return _Column(flat.reshape(n, dim).astype(np.float64), "float_vector")
    valid = np.asarray(fd.valid_data, dtype=bool)
    if len(valid) and len(flat) == int(valid.sum()) * dim:
        values: list[Any] = [None] * n
        rows = flat.reshape(-1, dim).astype(np.float64)
        for i, row in zip(np.flatnonzero(valid).tolist(), rows):
            values[i] = row.tolist()
        return _Column(values, "float_vector", ~valid if len(valid) == n else None)
    raise schema_error(
        f"FieldData {name!r} float_vector data has {len(flat)} elements, "
        f"expected num_rows({n}) * dim({dim}) = {n * dim}"
    )


def _read_sparse(fd: schema_pb2.FieldData, n: int) -> _Column:
    if fd.vectors.WhichOneof("data") != "sparse_float_vector":
        raise schema_error(
            f"FieldData {fd.field_name!r} declared SparseFloatVector but no sparse_float_vector data is set"
        )
    rows = [_sparse_row(content) for content in fd.vectors.sparse_float_vector.contents]
    if len(rows) != n:
        raise schema_error(f"FieldData {fd.field_name!r} sparse_float_vector has {len(rows)} rows, expected {n}")
    return _Column(rows, "sparse")


def _sparse_row(raw: bytes) -> dict[int, float]:
    """milvus-lite's bytes_to_sparse: little-endian (uint32 index, float32 value) pairs."""
    if len(raw) % 8:
        raise unexpected(f"sparse vector bytes length {len(raw)} is not a multiple of 8")
    return {int(i): float(v) for i, v in struct.iter_unpack("<If", raw)}


def _merge_dynamic(columns: dict[str, _Column], column: _Column, n: int) -> None:
    """A dynamic column's objects are spread into their rows' records (later keys win)."""
    for i in range(n):
        value = column.value(i)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, TypeError, RecursionError):
                continue
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            target = columns.get(key)
            if target is None:
                target = columns[key] = _Column([MISSING] * n, "")
            elif target.source:
                target.values, target.source = target.as_list(n), ""
                target.nulls = None
            target.values[i] = item


def _check_function_outputs(view: CollectionView, columns: dict[str, _Column], n: int) -> None:
    """A BM25 function's output is generated: a record may not carry it."""
    outputs = [name for fn in view.schema.functions if fn.type == S.FunctionType.BM25 for name in fn.output_field_names]
    for i in range(n):
        for name in outputs:
            if name in columns and columns[name].values[i] is not MISSING:
                raise schema_error(f"BM25 output field {name!r} is generated; provide its source text instead")


def _missing_keys(pk: schema_pb2.FieldSchema, columns: dict[str, _Column], n: int) -> np.ndarray:
    """Rows of an auto_id collection whose key milvus-lite generates (none given, or None)."""
    if pk.name not in columns:
        return np.arange(n)
    column = columns[pk.name]
    return np.asarray([i for i in range(n) if column.value(i) in (None, MISSING)], dtype=np.int64)


# --- the record checks (validate_record) -------------------------------------------------------------


class RecordCheck:
    """validate_record over every row: each check finds its first failing row, and the error
    milvus-lite raises is the one of the earliest row (then the earliest check in that row)."""

    def __init__(self, view: CollectionView, columns: dict[str, _Column], n: int, generated: np.ndarray | None):
        self.view = view
        self.columns = columns
        self.n = n
        self.generated = set(generated.tolist()) if generated is not None else set()
        self.fields = [f for f in view.schema.fields if not f.is_dynamic]
        outputs = {name for fn in view.schema.functions for name in fn.output_field_names}
        self.outputs = outputs | {f.name for f in self.fields if f.is_function_output}
        self.best: tuple[int, int, str] | None = None

    def run(self) -> None:
        checks: list[Callable[[], tuple[int, str] | None]] = [self._primary_key, self._float_vector]
        checks += [functools.partial(self._field, f) for f in self.fields if f.data_type != S.FloatVector]
        checks.append(self._extras)
        for order, check in enumerate(checks):
            found = check()
            if found is not None and (self.best is None or (found[0], order) < self.best[:2]):
                self.best = (found[0], order, found[1])
        if self.best is not None:
            raise schema_error(self.best[2])

    def value(self, f: schema_pb2.FieldSchema, i: int) -> Any:
        """The record's value once milvus-lite filled defaults (and generated keys)."""
        column = self.columns.get(f.name)
        v = MISSING if column is None else column.value(i)
        if (v is MISSING or v is None) and f.HasField("default_value"):
            return copy.deepcopy(_default(f))
        if (v is MISSING or v is None) and f.is_primary_key and i in self.generated:
            return 0
        return v

    def _first(self, f: schema_pb2.FieldSchema, bad: Callable[[Any], str | None]) -> tuple[int, str] | None:
        for i in range(self.n):
            message = bad(self.value(f, i))
            if message is not None:
                return i, message
        return None

    def _primary_key(self) -> tuple[int, str] | None:
        pk = self.view.pk_field
        column = self.columns.get(pk.name)
        if pk.autoID or (column is not None and column.nulls is None and column.source in ("long_data", "string_data")):
            return None  # generated, or read from a key member in every row
        return self._first(pk, lambda v: f"primary key {pk.name!r} missing or None" if v in (None, MISSING) else None)

    def _float_vector(self) -> tuple[int, str] | None:
        f = next((f for f in self.fields if f.data_type == S.FloatVector), None)
        if f is None or (f.name in self.outputs and f.name not in self.columns):
            return None  # a text-embedding function fills it before milvus-lite checks it
        column = self.columns.get(f.name)
        dim = _type_param(f, "dim")
        if column is not None and isinstance(column.values, np.ndarray) and column.nulls is None:
            width = column.values.shape[1]
            return None if width == dim else (0, f"vector field {f.name!r} expected dim {dim}, got {width}")
        return self._first(f, lambda v: _vector_error(f, v, dim))

    def _field(self, f: schema_pb2.FieldSchema) -> tuple[int, str] | None:
        if f.data_type == S.Array:
            return self._first(f, lambda v: _array_error(f, v))
        if f.data_type == S.SparseFloatVector:
            if f.name in self.outputs:
                return None
            return self._first(f, lambda v: _sparse_error(f, v))
        column = self.columns.get(f.name)
        if column is not None and column.nulls is None and column.source == _SCALAR_SLOTS.get(f.data_type):
            return self._own_member(f, column)
        return self._first(f, lambda v: _scalar_error(f, v, f.name in self.outputs))

    def _own_member(self, f: schema_pb2.FieldSchema, column: _Column) -> tuple[int, str] | None:
        """A column read from its type's own member holds that type in every row: only integer
        ranges and string lengths can fail, so the others are checked as a whole."""
        if f.data_type in (S.Int8, S.Int16, S.Int32):
            bits = _INT_RANGES[f.data_type]
            values = np.asarray(column.values, dtype=np.int64)
            bad = np.flatnonzero((values < -(2**bits)) | (values >= 2**bits))
            if not bad.size:
                return None
            i = int(bad[0])
            name = _LITE_NAMES[f.data_type]
            return i, f"field {f.name!r} value {int(values[i])!r} does not match dtype DataType.{name}"
        if f.data_type == S.VarChar:
            return self._first(f, lambda v: _scalar_error(f, v, False))
        return None

    def _extras(self) -> tuple[int, str] | None:
        if self.view.schema.enable_dynamic_field:
            return None
        known = {f.name for f in self.view.schema.fields}
        extra = [name for name in self.columns if name not in known]
        if not extra:
            return None
        for i in range(self.n):
            present = sorted(name for name in extra if self.columns[name].values[i] is not MISSING)
            if present:
                return i, f"record has fields {present} not in schema (enable_dynamic_field is False)"
        return None


def _type_param(f: schema_pb2.FieldSchema, key: str) -> int | None:
    for kv in f.type_params:
        if kv.key == key:
            try:
                return int(kv.value)
            except ValueError:
                return None
    return None


def _default(f: schema_pb2.FieldSchema) -> Any:
    member = f.default_value.WhichOneof("data")
    return getattr(f.default_value, member) if member else None


def _vector_error(f: schema_pb2.FieldSchema, v: Any, dim: int | None) -> str | None:
    if v is None or v is MISSING:
        return None if f.nullable else f"vector field {f.name!r} missing or None"
    if not isinstance(v, (list, tuple)):
        return f"vector field {f.name!r} must be list/tuple, got {type(v).__name__}"
    if len(v) != dim:
        return f"vector field {f.name!r} expected dim {dim}, got {len(v)}"
    for i, x in enumerate(v):
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            return f"vector field {f.name!r}[{i}] must be numeric, got {type(x).__name__}"
    return None


def _absent_error(kind: str, f: schema_pb2.FieldSchema) -> str | None:
    """An array or sparse vector field a record lacks (or holds None for)."""
    if f.nullable or f.HasField("default_value"):
        return None
    return f"{kind} {f.name!r} missing and not nullable / no default"


def _array_error(f: schema_pb2.FieldSchema, v: Any) -> str | None:
    if v is None or v is MISSING:
        return _absent_error("ARRAY field", f)
    if not isinstance(v, (list, tuple)):
        return f"ARRAY field {f.name!r} must be list/tuple, got {type(v).__name__}"
    capacity = _type_param(f, "max_capacity")
    if capacity is not None and len(v) > capacity:
        return f"ARRAY field {f.name!r} has {len(v)} elements, exceeds max_capacity={capacity}"
    return None


def _sparse_error(f: schema_pb2.FieldSchema, v: Any) -> str | None:
    if v is None or v is MISSING:
        return _absent_error("sparse vector field", f)
    try:
        normalize_sparse(v)
    except ValueError as exc:
        return f"sparse vector field {f.name!r}: {exc}"
    return None


def normalize_sparse(value: Any) -> None:
    """milvus-lite's normalize_sparse_vector(allow_empty=False), for its errors."""
    if not isinstance(value, dict):
        raise ValueError(f"sparse vector must be a dict, got {type(value).__name__}")
    nonzero = False
    for dimension, weight in value.items():
        if not isinstance(dimension, int) or isinstance(dimension, bool):
            raise ValueError(f"sparse dimension {dimension!r} must be int")
        if not 0 <= dimension < 2**32 - 1:
            raise ValueError(f"sparse dimension {dimension} must be non-negative and less than 2^32-1")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ValueError(f"sparse weight at dimension {dimension} must be numeric")
        try:
            number = float(weight)
            rounded = struct.unpack("<f", struct.pack("<f", number))[0] if math.isfinite(number) else number
        except OverflowError:
            rounded = math.inf
        if not math.isfinite(number) or number < 0 or not math.isfinite(rounded):
            raise ValueError(f"sparse weight at dimension {dimension} must be finite, non-negative float32")
        nonzero = nonzero or rounded != 0
    if not nonzero:
        raise ValueError("sparse vector must contain at least one nonzero float32 weight")


def _scalar_error(f: schema_pb2.FieldSchema, v: Any, generated: bool) -> str | None:
    if v is MISSING:
        if f.nullable or f.HasField("default_value") or generated:
            return None
        return f"field {f.name!r} missing and not nullable / no default"
    if v is None:
        return None if f.nullable else f"field {f.name!r} is None but not nullable"
    if f.data_type in (S.Geometry, S.Timestamptz):
        return None  # parsed by milvus-lite only (not replayed)
    limit = _type_param(f, "max_length")
    if f.data_type == S.VarChar and limit is not None and isinstance(v, str) and len(v) > limit:
        return f"VARCHAR field {f.name!r} value length {len(v)} exceeds max_length={limit}"
    if not _type_ok(f.data_type, v):
        return f"field {f.name!r} value {v!r} does not match dtype DataType.{_LITE_NAMES.get(f.data_type, '')}"
    return None


def _type_ok(t: int, v: Any) -> bool:
    if t == S.Bool:
        return isinstance(v, bool)
    if t in _INT_RANGES:
        bits = _INT_RANGES[t]
        return isinstance(v, int) and not isinstance(v, bool) and -(2**bits) <= v < 2**bits
    if t in (S.Float, S.Double):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == S.VarChar:
        return isinstance(v, str)
    if t == S.JSON:
        return v is None or isinstance(v, (dict, list, str, int, float, bool))
    return True


# --- pyarrow building the write-ahead batch ------------------------------------------------------


def _check_arrow(view: CollectionView, columns: dict[str, _Column], n: int) -> None:
    """The first value pyarrow refuses, column by column in schema order."""
    for f in view.schema.fields:
        column = columns.get(f.name)
        if f.is_dynamic or column is None:
            continue
        if f.data_type == S.Array:
            target = _ARROW.get(f.element_type)
            values: Iterable[Any] = (x for v in column.as_list(n) if isinstance(v, (list, tuple)) for x in v)
        elif f.data_type == S.JSON:
            target = "string"
            values = (_json_text(v) for v in column.as_list(n))
        elif column.source == _SCALAR_SLOTS.get(f.data_type):
            continue  # read from its own member (protobuf strings are UTF-8): pyarrow takes it
        else:
            target = _ARROW.get(f.data_type)
            values = column.as_list(n) if target else ()
        for x in values:
            error = arrow_error(x, target) if target else None
            if error is not None:
                raise unexpected(error)


def _json_text(v: Any) -> Any:
    """What milvus-lite hands pyarrow for a JSON value."""
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return None if v is MISSING else v


_ARROW_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def arrow_error(x: Any, target: str) -> str | None:
    """pyarrow 26's message for converting the Python value `x` to `target`, or None."""
    if x is None or x is MISSING:
        return None
    kind = type(x).__name__
    if target in _ARROW_INT_BITS:
        return _arrow_int_error(x, target, kind)
    if target in ("float32", "double"):
        if isinstance(x, (bool, float)):
            return None
        if isinstance(x, int):
            if not -(2**63) <= x < 2**63:
                return "PyLong is too large to fit int64"
            exact = 2**24 if target == "float32" else 2**53
            if abs(x) > exact:
                precision = "single" if target == "float32" else "double"
                return f"Integer value {x} is outside of the range exactly representable by a IEEE 754 {precision} precision value"
            return None
        return f"Could not convert {x!r} with type {kind}: tried to convert to {target}"
    if target == "string":
        if not isinstance(x, str):
            return f"Expected bytes, got a '{kind}' object"
        try:
            x.encode("utf-8")
        except UnicodeEncodeError as exc:
            return str(exc)
        return None
    if target == "bool":
        return None if isinstance(x, bool) else f"Could not convert {x!r} with type {kind}: tried to convert to boolean"
    return None


def _arrow_int_error(x: Any, target: str, kind: str) -> str | None:
    bits = _ARROW_INT_BITS[target]
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if isinstance(x, bool):
        return "Expected integer, got bool"
    if isinstance(x, int):
        if not -(2**63) <= x < 2**63:
            return "Python int too large to convert to C long"
        return None if lo <= x <= hi else f"Value {x} too large to fit in C integer type"
    if isinstance(x, float) and math.isfinite(x) and lo <= x <= hi:
        return None
    return f"Could not convert {x!r} with type {kind}: tried to convert to {target}"


# --- Delete -----------------------------------------------------------------------------------------


def delete_keys(view: CollectionView, request: milvus_pb2.DeleteRequest) -> list[Any] | None:
    """milvus-lite's delete: `pk in [...]` of plain literals is read directly (then the partition
    and pyarrow check the keys); anything else is resolved by a query (None)."""
    pk = view.pk_field
    keys = literals.literal_keys(request.expr, pk.name, literals.LITE, term_only=True) if request.expr else None
    if keys is None:
        return literals.keys_of_delete_expr(request.expr, pk, literals.LITE) if request.expr else None
    check_partition(view, request.partition_name, keys)
    target = "int64" if pk.data_type == S.Int64 else "string"
    for key in keys:
        error = arrow_error(key, target)
        if error is not None:
            raise unexpected(error)
    return keys


def check_partition(view: CollectionView, partition: str, keys: list[Any]) -> None:
    """milvus-lite checks a delete's partition only when there are keys to delete."""
    if keys and partition and partition not in view.message.partitions:
        raise partition_not_found(partition)
