"""Writes checked before the log, as the backend in use checks them, with its codes and messages.

A write the log holds is acknowledged before any backend sees it, so whatever the backend
would refuse must be refused here, and whatever it accepts must be accepted. Each backend
has its own rules (its "dialect"): Milvus 2.3.5 (the `milvus` package, and the default while
an instance's version is unknown) checks in its proxy in a fixed order, which this module
follows step by step (`_milvus_rows`); milvus-lite checks record by record in Python
(validation_lite.py). Where Milvus 2.3.5 accepts input that then crashes it (a vector whose
`dim` differs from the schema, a scalar column in another type's slot, a missing column
with a default value), the router refuses it with the message a later Milvus gives, or fills
the default as a later Milvus does; docs/compatibility.md lists these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.router import gojson, literals
from mishards.router.catalog import CollectionView

MILVUS = literals.MILVUS
LITE = literals.LITE
META = "$meta"
IO_FAILED = 1001  # merr.ErrIoFailed
JSON_MAX_LENGTH = 65536  # Milvus's common.JSONMaxLength default
NAME_MAX_LENGTH = 255  # Milvus's proxy.maxNameLength default
PARTITION_LEGACY = 15  # the legacy error_code Milvus 2.3.5 sends with "partition not found" (MetaFailed)
PARTITION_KEY_NAMED = "not support manually specifying the partition names if partition key mode is used"

S = schema_pb2
# the ScalarField / VectorField member each data type's values live in
SLOT = {
    S.Bool: "bool_data",
    S.Int8: "int_data",
    S.Int16: "int_data",
    S.Int32: "int_data",
    S.Int64: "long_data",
    S.Float: "float_data",
    S.Double: "double_data",
    S.String: "string_data",
    S.VarChar: "string_data",
    S.Array: "array_data",
    S.JSON: "json_data",
    S.BinaryVector: "binary_vector",
    S.FloatVector: "float_vector",
    S.Float16Vector: "float16_vector",
    S.BFloat16Vector: "bfloat16_vector",
    S.SparseFloatVector: "sparse_float_vector",
}
VECTOR_TYPES = {S.BinaryVector, S.FloatVector, S.Float16Vector, S.BFloat16Vector, S.SparseFloatVector}


def dialect_of(version: str) -> str:
    """The rules a backend checks writes by: milvus-lite reports "milvus_lite-x.y.z"."""
    return LITE if version.startswith("milvus_lite") else MILVUS


def invalid(expected: Any, actual: Any, message: str) -> MilvusError:
    """merr.WrapErrParameterInvalid: code 1100 with Milvus's `[expected=..][actual=..]` suffix."""
    return MilvusError(errors.PARAMETER_INVALID, f"{message}: invalid parameter[expected={expected}][actual={actual}]")


def invalid_msg(message: str) -> MilvusError:
    """merr.WrapErrParameterInvalidMsg: code 1100, the message and ": invalid parameter"."""
    return MilvusError(errors.PARAMETER_INVALID, f"{message}: invalid parameter")


def plain(message: str) -> MilvusError:
    """A Go error Milvus does not classify: code 65535."""
    return MilvusError(errors.UNEXPECTED, message)


@dataclass
class Rows:
    """A validated insert or upsert: the columns to log and each row's primary key."""

    fields_data: list[schema_pb2.FieldData]
    num_rows: int
    pk: schema_pb2.FieldSchema
    keys: Any = None  # np.ndarray (int64) or list[str]; None until ids are assigned
    missing_keys: np.ndarray | None = None  # rows whose key the router allocates

    @property
    def ids_needed(self) -> int:
        return 0 if self.missing_keys is None else len(self.missing_keys)

    def assign_ids(self, ids: Sequence[int] | np.ndarray) -> None:
        """Give the rows that lack a key the ids the router allocated, in the pk column too."""
        assert self.missing_keys is not None
        keys = np.zeros(self.num_rows, dtype=np.int64) if self.keys is None else np.asarray(self.keys, dtype=np.int64)
        keys[self.missing_keys] = np.asarray(ids, dtype=np.int64)
        self.fields_data = [fd for fd in self.fields_data if fd.field_name != self.pk.name]
        column = schema_pb2.FieldData(type=S.Int64, field_name=self.pk.name, field_id=self.pk.fieldID)
        column.scalars.long_data.data.extend(keys.tolist())
        self.fields_data.append(column)
        self.keys = keys
        self.missing_keys = None


def validate_rows(
    view: CollectionView,
    request: milvus_pb2.InsertRequest | milvus_pb2.UpsertRequest,
    dialect: str = MILVUS,
) -> Rows:
    """Check an insert or upsert as the backend would; the columns to log, or the backend's error."""
    upsert = isinstance(request, milvus_pb2.UpsertRequest)
    if dialect == LITE:
        from mishards.router import validation_lite

        return validation_lite.rows(view, request, upsert)
    return _milvus_rows(view, request, upsert)


# --- Milvus 2.3.5: insertTask / upsertTask PreExecute and Execute, in their order -------------------


def _schema_fields(view: CollectionView) -> list[schema_pb2.FieldSchema]:
    return [f for f in view.schema.fields if not f.is_dynamic]


def _partition_key_field(view: CollectionView) -> schema_pb2.FieldSchema | None:
    return next((f for f in view.schema.fields if f.is_partition_key), None)


def _milvus_rows(view: CollectionView, request: Any, upsert: bool) -> Rows:
    num_rows = request.num_rows
    partition = request.partition_name
    partition_key = _partition_key_field(view) is not None
    if upsert and partition_key and partition:
        raise plain(PARTITION_KEY_NAMED)
    given = [_without_valid_data(fd) for fd in request.fields_data]
    columns = _milvus_dynamic(view, given, num_rows)
    if num_rows <= 0:
        raise invalid("invalid num_rows", num_rows, "num_rows should be greater than 0")
    _milvus_duplicates(columns)
    missing = _milvus_field_count(view, columns)
    _milvus_primary_key(view, columns, upsert)
    if not partition_key:
        validate_partition_name(partition or "_default")
    elif not upsert and partition:
        raise plain(PARTITION_KEY_NAMED)
    checked = columns + missing
    by_name = {f.name: f for f in view.schema.fields}
    if view.schema.enable_dynamic_field:
        by_name.setdefault(META, schema_pb2.FieldSchema(name=META, data_type=S.JSON, is_dynamic=True))
    for fd in checked:
        _milvus_check_column(fd, by_name.get(fd.field_name))
    for fd in checked:
        _milvus_aligned(fd, by_name.get(fd.field_name), num_rows)
    if partition and not partition_key and partition not in view.message.partitions:
        raise MilvusError(errors.PARTITION_NOT_FOUND, f"partition not found[partition={partition}]", PARTITION_LEGACY)
    for fd in checked:
        _milvus_crash_guard(fd, by_name.get(fd.field_name))
    logged = [_with_defaults(fd, by_name.get(fd.field_name), num_rows) for fd in given + missing]
    logged = [fd for fd in logged if fd.WhichOneof("field") is not None]
    return _rows_with_keys(view, logged, num_rows)


def _without_valid_data(fd: schema_pb2.FieldData) -> schema_pb2.FieldData:
    """2.3.5 has no nullable fields and ignores valid_data; so does the copy the router logs."""
    if not len(fd.valid_data):
        return fd
    copy = schema_pb2.FieldData()
    copy.CopyFrom(fd)
    copy.ClearField("valid_data")
    return copy


def _milvus_dynamic(view: CollectionView, given: list[schema_pb2.FieldData], num_rows: int) -> list:
    """checkDynamicFieldData: the first flagged column is `$meta` and must hold JSON objects;
    without one, Milvus adds a `{}` column (which counts as a field)."""
    if not view.schema.enable_dynamic_field:
        return list(given)
    columns = list(given)
    flagged = next((i for i, fd in enumerate(columns) if fd.is_dynamic), None)
    if flagged is None:
        meta = schema_pb2.FieldData(type=S.JSON, field_name=META, is_dynamic=True)
        # No column holds more rows than its bytes: past that, a given column fails checkAligned
        # before this one, so the `{}` rows are not all built (num_rows 2**32-1 would take 100+ GB).
        fill = min(num_rows, 1 + max((fd.ByteSize() for fd in given), default=0))
        meta.scalars.json_data.data.extend([b"{}"] * max(fill, 0))
        return columns + [meta]
    renamed = schema_pb2.FieldData()
    renamed.CopyFrom(columns[flagged])
    renamed.field_name = META
    columns[flagged] = renamed
    for fd in columns:
        if fd.field_name == META:
            _check_dynamic_rows(fd)
    return columns


def _check_dynamic_rows(fd: schema_pb2.FieldData) -> None:
    for row in fd.scalars.json_data.data:
        error, decoded = gojson.decode_map(row)
        if error is not None:
            raise plain(error)
        if decoded is not None and META in decoded:
            raise plain(f"cannot set json key to: {META}")


def _milvus_duplicates(columns: list[schema_pb2.FieldData]) -> None:
    seen: set[str] = set()
    for fd in columns:
        if fd.field_name in seen:
            raise invalid_msg(f"duplicated field {fd.field_name} found")
        seen.add(fd.field_name)


def _milvus_field_count(view: CollectionView, columns: list) -> list[schema_pb2.FieldData]:
    """fillFieldsDataBySchema: an empty column for each missing field but the primary key, then
    one column per field (the dynamic one included) that is not an auto_id key."""
    fields = _schema_fields(view)
    names = {fd.field_name for fd in columns}
    missing = []
    for f in fields:
        if f.name not in names and not f.is_primary_key:
            missing.append(schema_pb2.FieldData(type=f.data_type, field_name=f.name))
    needed = sum(1 for f in fields if not f.autoID) + int(view.schema.enable_dynamic_field)
    actual = len(columns) + len(missing)
    if actual != needed:
        raise invalid(needed, actual, "the number of fields is less than needed")
    return missing


def _milvus_primary_key(view: CollectionView, columns: list, upsert: bool) -> None:
    pk = view.pk_field
    column = next((fd for fd in columns if fd.field_name == pk.name), None)
    if pk.autoID:
        if upsert and column is None:
            raise invalid_msg(f"upsert can not assign primary field data when auto id enabled {pk.name}")
        return
    if column is None:
        raise plain(f"can't find data for primary field: {pk.name}")
    if _slot(column) not in ("long_data", "string_data"):
        raise plain("currently only support DataType Int64 or VarChar as PrimaryField")


def validate_partition_name(name: str) -> None:
    """validatePartitionTag (strict), as Milvus 2.3.5's insert and delete run it."""
    name = name.strip(" \t\n\v\f\r")
    prefix = f"Invalid partition name: {name}. "
    if not name:
        raise plain(prefix + "Partition name should not be empty.")
    if len(name.encode()) > NAME_MAX_LENGTH:
        raise plain(prefix + f"The length of a partition name must be less than {NAME_MAX_LENGTH} characters.")
    if not (name[0] == "_" or name[0].isascii() and name[0].isalnum()):  # digits pass, whatever it says
        raise plain(prefix + "The first character of a partition name must be an underscore or letter.")
    if any(not (c == "_" or c.isascii() and c.isalnum()) for c in name[1:]):
        raise plain(prefix + "Partition name can only contain numbers, letters and underscores.")


def _slot(fd: schema_pb2.FieldData) -> str | None:
    kind = fd.WhichOneof("field")
    if kind == "scalars":
        return fd.scalars.WhichOneof("data")
    if kind == "vectors":
        return fd.vectors.WhichOneof("data")
    return None


def _values(fd: schema_pb2.FieldData, slot: str) -> Any:
    """The repeated values of `slot` (empty when another member is set)."""
    if _slot(fd) != slot:
        return ()
    if fd.WhichOneof("field") == "vectors":
        member = getattr(fd.vectors, slot)
        return member if isinstance(member, bytes) else getattr(member, "data", getattr(member, "contents", ()))
    return getattr(fd.scalars, slot).data


def _nil(fd: schema_pb2.FieldData, slot: str) -> bool:
    """Go's view of a repeated slot: nil when absent or empty."""
    return len(_values(fd, slot)) == 0


def _milvus_check_column(fd: schema_pb2.FieldData, f: schema_pb2.FieldSchema | None) -> None:
    """validateUtil.Validate's per-column checks (NaN, max length, overflow, capacity)."""
    if f is None:
        return
    t = f.data_type
    has_default = f.HasField("default_value")
    if t == S.FloatVector:
        if _nil(fd, "float_vector"):
            raise _type_mismatch("float vector field", fd, "need float vector")
        _check_finite(np.asarray(fd.vectors.float_vector.data, dtype=np.float32))
    elif t == S.VarChar:
        if _nil(fd, "string_data") and not has_default:
            raise _type_mismatch("varchar field", fd, "need string array")
        if not f.autoID:
            _check_lengths(fd.scalars.string_data.data if _slot(fd) == "string_data" else (), _max_length(f))
    elif t == S.JSON:
        if _nil(fd, "json_data"):
            raise _type_mismatch("json field", fd, "need json array")
        _check_json_rows(fd)
    elif t in (S.Int8, S.Int16):
        if _nil(fd, "int_data") and not has_default:
            raise _type_mismatch("field", fd, "need int array")
        _check_overflow(_values(fd, "int_data"), t)
    elif t == S.Array:
        _milvus_check_array(fd, f)


def _type_mismatch(kind: str, fd: schema_pb2.FieldData, expected: str) -> MilvusError:
    return invalid(expected, "got nil", f"{kind} '{fd.field_name}' is illegal, array type mismatch")


def _check_finite(values: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        value = float(values[bad[0]])
        raise plain(f"value '{_go_float(value)}' is not a number or infinity")


def _go_float(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _max_length(f: schema_pb2.FieldSchema) -> int:
    for kv in f.type_params:
        if kv.key == "max_length":
            return int(kv.value)
    raise plain(f"type param(max_length) should be specified for varChar field of collection {f.name}")


def _check_lengths(values: Sequence[str], limit: int) -> None:
    """verifyLengthPerRow: Go counts bytes, so UTF-8 lengths."""
    for i, s in enumerate(values):
        if len(s) > limit // 4 and len(s.encode()) > limit:  # no string of <= limit/4 chars is too long
            raise invalid(
                "valid length string",
                "string length exceeds max length",
                f"the length ({len(s.encode())}) of {i}th string exceeds max length ({limit})",
            )


def _check_json_rows(fd: schema_pb2.FieldData) -> None:
    rows = fd.scalars.json_data.data
    for row in rows:
        if len(row) > JSON_MAX_LENGTH:
            if fd.is_dynamic:
                raise invalid(
                    "valid length dynamic field",
                    "length exceeds max length",
                    f"the length ({len(row)}) of dynamic field exceeds max length ({JSON_MAX_LENGTH})",
                )
            raise invalid(
                "valid length json string",
                "length exceeds max length",
                f"the length ({len(row)}) of json field ({fd.field_name}) exceeds max length ({JSON_MAX_LENGTH})",
            )
    if fd.field_name == META:
        return  # the dynamic field's rows were decoded as maps already
    for row in rows:
        error = gojson.unmarshal_map_error(row)
        if error is not None:
            raise MilvusError(IO_FAILED, f"IO failed: {error}")


_RANGES = {S.Int8: (-128, 127), S.Int16: (-32768, 32767)}


def _check_overflow(values: Any, t: int) -> None:
    lo, hi = _RANGES[t]
    arr = np.asarray(values, dtype=np.int64)
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        i = int(bad[0])
        raise invalid(
            "integer doesn't overflow", "out of range", f"the {i}th element ({int(arr[i])}) out of range: [{lo}, {hi}]"
        )


# element type -> (what Milvus 2.3.5 calls an array of it, the member its rows use)
_ARRAY_ELEMENTS = {
    S.Bool: ("bool array", "bool_data"),
    S.Int8: ("int array", "int_data"),
    S.Int16: ("int array", "int_data"),
    S.Int32: ("int array", "int_data"),
    S.Int64: ("int64 array", "long_data"),
    S.Float: ("float array", "float_data"),
    S.Double: ("double array", "double_data"),
    S.VarChar: ("string array", "string_data"),
    S.String: ("string array", "string_data"),
}


def _go_scalar_type(member: str) -> str:
    return "*schemapb.ScalarField_" + "".join(part.capitalize() for part in member.split("_"))


def _milvus_check_array(fd: schema_pb2.FieldData, f: schema_pb2.FieldSchema) -> None:
    """checkArrayFieldData: capacity (by the schema's element member), string lengths (when the
    column says its elements are strings), then each row's member."""
    if _slot(fd) != "array_data":
        elem = S.DataType.Name(f.element_type)
        raise invalid(f"need {elem} array", "got nil", f"array field '{fd.field_name}' is illegal, array type mismatch")
    data = fd.scalars.array_data
    name, member = _ARRAY_ELEMENTS.get(f.element_type, ("", ""))
    if not member:
        elem = S.DataType.Name(f.element_type)
        raise invalid(
            "valid array element type",
            "array element type is not supported",
            f"array element type: {elem} is not supported",
        )
    capacity = _max_capacity(f)
    for i, row in enumerate(data.data):
        length = len(getattr(row, member).data) if row.WhichOneof("data") == member else 0
        if length > capacity:
            raise invalid(
                "valid length array",
                "array length exceeds max capacity",
                f"the length ({length}) of {i}th array exceeds max capacity ({capacity})",
            )
    if data.element_type in (S.VarChar, S.String):
        if f.element_type not in (S.VarChar, S.String):
            raise invalid("VarChar", "Array", "Array is not of string type")
        for row in data.data:
            _check_lengths(row.string_data.data if row.WhichOneof("data") == "string_data" else (), _max_length(f))
    for row in data.data:
        actual = row.WhichOneof("data")
        if actual is None:  # 2.3.5 dereferences a nil type here and dies; later Milvus says this
            raise invalid(name, "nil array", "insert data does not match")
        if actual != member:
            raise invalid(name, f"{_go_scalar_type(actual)} array", "insert data does not match")
        if f.element_type in _RANGES:
            _check_overflow(row.int_data.data, f.element_type)


def _max_capacity(f: schema_pb2.FieldSchema) -> int:
    for kv in f.type_params:
        if kv.key == "max_capacity":
            return int(kv.value)
    raise plain("type param(max_capacity) should be specified for array field")


def _milvus_aligned(fd: schema_pb2.FieldData, f: schema_pb2.FieldSchema | None, num_rows: int) -> None:
    """checkAligned: each column's rows (vectors measured with the schema's dim) against num_rows."""
    if f is not None and f.HasField("default_value") and fd.WhichOneof("field") is None:
        return  # filled with the default by the router (2.3.5 itself would crash on it)
    if fd.type in (S.FloatVector, S.BinaryVector, S.Float16Vector, S.BFloat16Vector) and f is not None:
        if f.data_type not in VECTOR_TYPES:  # 2.3.5 takes a scalar sent as a vector (then crashes)
            rows = _rows_by_member(fd)
        else:
            rows = _vector_rows(fd, _dim(f))
    elif f is not None and f.HasField("default_value") and _nil(fd, SLOT.get(f.data_type, "")):
        rows = num_rows  # fillWithDefaultValue filled the empty column
    else:
        rows = _rows_by_member(fd)
    if rows != num_rows:
        raise invalid(
            num_rows,
            num_rows,
            f"the num_rows ({rows}) of field ({fd.field_name}) is not equal to passed num_rows ({num_rows})",
        )


def _dim(f: schema_pb2.FieldSchema) -> int:
    for kv in f.type_params:
        if kv.key == "dim":
            return int(kv.value)
    return 0


def _vector_rows(fd: schema_pb2.FieldData, dim: int) -> int:
    """Rows of a vector column measured with the schema's dim, failing as Milvus 2.3.5 fails."""
    if fd.type == S.FloatVector:
        length = len(_values(fd, "float_vector"))
        if dim <= 0 or length % dim:
            raise plain(f"the length({length}) of float data should divide the dim({dim})")
        return length // dim
    if fd.type == S.BinaryVector:
        bits = 8 * len(_values(fd, "binary_vector"))
        if dim <= 0 or bits % dim:
            raise plain(f"the num({bits}) of all bits should divide the dim({dim})")
        return bits // dim
    member = "float16_vector" if fd.type == S.Float16Vector else "bfloat16_vector"
    length = len(_values(fd, member)) // 2
    if dim <= 0 or length % dim:
        raise plain(f"the length({length}) of {member} data should divide the dim({dim})")
    return length // dim


def _rows_by_member(fd: schema_pb2.FieldData) -> int:
    """funcutil.GetNumRowOfFieldData: rows of whatever member is set."""
    slot = _slot(fd)
    if slot is None:
        raise plain("%!s(<nil>) is not supported now")
    if fd.WhichOneof("field") == "scalars":
        return len(getattr(fd.scalars, slot).data)
    if slot == "sparse_float_vector":
        return len(fd.vectors.sparse_float_vector.contents)
    dim = fd.vectors.dim
    if dim <= 0:  # 2.3.5 divides by it and dies
        raise _dim_mismatch(fd, dim, -1)
    if slot == "float_vector":
        return len(fd.vectors.float_vector.data) // dim
    width = {"binary_vector": dim / 8, "float16_vector": 2 * dim, "bfloat16_vector": 2 * dim}.get(slot, dim)
    return int(len(getattr(fd.vectors, slot)) // width) if width else 0


def _dim_mismatch(fd: schema_pb2.FieldData, data_dim: int, schema_dim: int) -> MilvusError:
    return invalid(
        schema_dim,
        data_dim,
        f"the dim ({data_dim}) of field data({fd.field_name}) is not equal to schema dim ({schema_dim})",
    )


# what later Milvus proxies say of a column in another type's member (2.3.5 takes it and crashes)
_NEED = {
    S.Bool: "need bool array",
    S.Int32: "need int array",
    S.Int64: "need long int array",
    S.Float: "need float32 array",
    S.Double: "need float64(double) array",
}


_VECTOR_NEED = {
    S.FloatVector: ("float vector field", "need float vector"),
    S.BinaryVector: ("binary float vector field", "need bytes array"),
    S.Float16Vector: ("float16 float field", "need vector_float16 array"),
    S.BFloat16Vector: ("bfloat16 float field", "need vector_bfloat16 array"),
    S.SparseFloatVector: ("sparse float field", "need sparse float array"),
}


def _milvus_crash_guard(fd: schema_pb2.FieldData, f: schema_pb2.FieldSchema | None) -> None:
    """Refuse what Milvus 2.3.5 accepts and then dies on (seen in its datanode and querynode)."""
    if f is None or (f.HasField("default_value") and fd.WhichOneof("field") is None):
        return
    t = f.data_type
    if t in VECTOR_TYPES:
        if _slot(fd) != SLOT[t]:
            kind, need = _VECTOR_NEED[t]
            raise invalid(need, "got nil", f"{kind} '{fd.field_name}' is illegal, array type mismatch")
        if t != S.SparseFloatVector and fd.vectors.dim != _dim(f):
            raise _dim_mismatch(fd, fd.vectors.dim, _dim(f))
    elif t in _NEED and _slot(fd) != SLOT[t] and not (f.HasField("default_value") and _nil(fd, SLOT[t])):
        raise _type_mismatch("field", fd, _NEED[t])


def _with_defaults(fd: schema_pb2.FieldData, f: schema_pb2.FieldSchema | None, num_rows: int) -> schema_pb2.FieldData:
    """A column as the router logs it: a missing or empty one with a default holds the default."""
    if f is None or not f.HasField("default_value") or not _nil(fd, SLOT.get(f.data_type, "")):
        return fd
    filled = schema_pb2.FieldData(type=f.data_type, field_name=f.name, field_id=fd.field_id, is_dynamic=fd.is_dynamic)
    default = f.default_value
    member = default.WhichOneof("data")
    if member is None:
        return fd
    value = getattr(default, member)
    getattr(filled.scalars, SLOT[f.data_type]).data.extend([value] * num_rows)
    return filled


def _rows_with_keys(view: CollectionView, columns: list, num_rows: int) -> Rows:
    pk = view.pk_field
    rows = Rows(fields_data=columns, num_rows=num_rows, pk=pk)
    column = next((fd for fd in columns if fd.field_name == pk.name), None)
    if column is None:
        rows.missing_keys = np.arange(num_rows)
    elif pk.data_type == S.Int64:
        rows.keys = np.asarray(column.scalars.long_data.data, dtype=np.int64)
    else:
        rows.keys = list(column.scalars.string_data.data)
    return rows


# --- Delete ------------------------------------------------------------------------------------------


def validate_delete(view: CollectionView, request: milvus_pb2.DeleteRequest, dialect: str = MILVUS) -> list[Any] | None:
    """Check a delete before its keys are known; the keys its expression names, when it names
    them as literals the backend reads the same way (None: resolve it by a query)."""
    partition = request.partition_name
    partition_key = _partition_key_field(view) is not None
    if dialect == LITE:
        from mishards.router import validation_lite

        return validation_lite.delete_keys(view, request)
    if partition:
        if partition_key:
            raise plain(PARTITION_KEY_NAMED)
        validate_partition_name(partition)
        if partition not in view.message.partitions:
            raise MilvusError(
                errors.PARTITION_NOT_FOUND,
                f"Failed to get partition id: partition not found[partition={partition}]",
                PARTITION_LEGACY,
            )
    return literals.keys_of_delete_expr(request.expr, view.pk_field, MILVUS)


def check_delete_partition(
    view: CollectionView, request: milvus_pb2.DeleteRequest, keys: list[Any], dialect: str
) -> None:
    """The partition check left for once a query resolved a delete's keys: milvus-lite checks the
    partition only then, and only when there is a key to delete (2.3.5 checked it up front)."""
    if dialect == LITE:
        from mishards.router import validation_lite

        validation_lite.check_partition(view, request.partition_name, keys)


def collection_not_found(name: str, db_name: str, method: str, dialect: str) -> MilvusError:
    """An unknown collection, as the backend words it for a write."""
    if dialect == LITE:
        from mishards.router import validation_lite

        return validation_lite.collection_not_found(name)
    return errors.collection_not_found_in(method, name, db_name)
