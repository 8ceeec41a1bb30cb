"""Row operations on Milvus columnar data (``schema_pb2.FieldData`` and ``schema_pb2.IDs``).

Milvus ships rows column by column. The router has to cut shard answers into rows,
reorder them and glue them together without changing what a client decodes, so every
column is read once into numpy arrays (numbers, dense vectors) or Python lists
(strings, bytes, nested messages), gathered with fancy indexing and written back.

Nullable columns carry ``valid_data`` (one flag per row). Their payload is either
*padded* (one entry per row; Milvus does this for scalars in query and search results,
which is what pymilvus decodes) or *compact* (entries for valid rows only; pymilvus
sends inserts this way and decodes nullable vectors this way). The layout of a column
is read from its lengths and kept as it came in.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message_factory import GetMessageClass
from pymilvus.grpc_gen import schema_pb2

__all__ = [
    "concat",
    "ids_concat",
    "ids_len",
    "ids_take",
    "ids_values",
    "num_rows",
    "take_rows",
]

Rows: TypeAlias = Sequence[int] | np.ndarray

# numpy dtype of each protobuf repeated scalar type we read into arrays
_NUMPY_DTYPES: dict[int, Any] = {
    FieldDescriptor.TYPE_BOOL: np.bool_,
    FieldDescriptor.TYPE_INT32: np.int32,
    FieldDescriptor.TYPE_SINT32: np.int32,
    FieldDescriptor.TYPE_SFIXED32: np.int32,
    FieldDescriptor.TYPE_UINT32: np.uint32,
    FieldDescriptor.TYPE_FIXED32: np.uint32,
    FieldDescriptor.TYPE_INT64: np.int64,
    FieldDescriptor.TYPE_SINT64: np.int64,
    FieldDescriptor.TYPE_SFIXED64: np.int64,
    FieldDescriptor.TYPE_UINT64: np.uint64,
    FieldDescriptor.TYPE_FIXED64: np.uint64,
    FieldDescriptor.TYPE_FLOAT: np.float32,
    FieldDescriptor.TYPE_DOUBLE: np.float64,
}
# packed fixed-width types whose wire form is plain little-endian bytes
_WIRE_DTYPES: dict[int, str] = {
    FieldDescriptor.TYPE_FLOAT: "<f4",
    FieldDescriptor.TYPE_DOUBLE: "<f8",
}
# bytes per row of the byte-packed dense vector kinds, from dim
_BYTE_VECTOR_WIDTH: dict[str, Any] = {
    "binary_vector": lambda dim: dim // 8,
    "float16_vector": lambda dim: 2 * dim,
    "bfloat16_vector": lambda dim: 2 * dim,
    "int8_vector": lambda dim: dim,
}
# repeated member holding the rows of each list-like vector container
_VECTOR_LIST_MEMBER = {"sparse_float_vector": "contents", "vector_array": "data"}


@dataclass
class _Column:
    """One FieldData read into numpy/list form; ``data`` holds ``stored`` entries."""

    type: int
    field_name: str
    field_id: int
    is_dynamic: bool
    kind: str | None  # "scalars" | "vectors" | "struct_arrays" | None (no payload)
    attr: str | None  # oneof member inside ScalarField / VectorField
    dim: int  # VectorField.dim
    header: dict[str, Any]  # plain fields of the container besides its rows
    rows: int
    valid: np.ndarray | None
    compact: bool
    data: Any  # np.ndarray | list | list[_Column]
    filler: Any = field(default=None)  # value for a null row when padding a list payload

    @property
    def stored(self) -> int:
        """Number of payload entries."""
        if self.kind == "struct_arrays":
            return self.data[0].rows if self.data else 0
        return len(self.data) if self.data is not None else 0


def _rows_index(rows: Rows, n: int) -> np.ndarray:
    idx = np.asarray(rows, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError("rows must be one-dimensional")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"row index out of range for {n} rows")
    return idx


def _header(container: Any, member: str) -> dict[str, Any]:
    return {
        f.name: getattr(container, f.name)
        for f in container.DESCRIPTOR.fields
        if f.name != member and not f.is_repeated and f.message_type is None
    }


def _read_repeated(container: Any, member: str = "data") -> tuple[Any, Any]:
    """Rows of a repeated member as an array (numbers) or a list, plus a null filler."""
    fdesc = container.DESCRIPTOR.fields_by_name[member]
    values = getattr(container, member)
    if fdesc.message_type is not None:
        return list(values), GetMessageClass(fdesc.message_type)()
    dtype = _NUMPY_DTYPES.get(fdesc.type)
    if dtype is not None:
        return np.array(values, dtype=dtype), None
    filler = b"" if fdesc.type == FieldDescriptor.TYPE_BYTES else ""
    return list(values), filler


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _write_repeated(container: Any, data: Any, member: str = "data") -> None:
    """Append rows to a repeated member; fixed-width numbers go in as raw wire bytes."""
    if isinstance(data, np.ndarray):
        if data.size == 0:
            return
        fdesc = container.DESCRIPTOR.fields_by_name[member]
        wire = _WIRE_DTYPES.get(fdesc.type)
        if wire is not None:
            # packed repeated float/double is tag, length, little-endian values:
            # parsing that is ~50x faster than extending from a Python list
            raw = np.ascontiguousarray(data, dtype=wire).tobytes()
            tag = _varint(fdesc.number << 3 | 2)
            container.MergeFromString(b"".join((tag, _varint(len(raw)), raw)))
            return
        getattr(container, member).extend(data.ravel().tolist())
    else:
        getattr(container, member).extend(data)


def _sparse_dim(rows: list[bytes]) -> int:
    """Largest index + 1 over sparse rows (each row is little-endian uint32 index, float32)."""
    raw = b"".join(rows)
    if not raw:
        return 0
    return int(np.frombuffer(raw, dtype="<u4")[0::2].max()) + 1


def _read(fd: schema_pb2.FieldData) -> _Column:
    kind = fd.WhichOneof("field")
    attr: str | None = None
    dim = 0
    header: dict[str, Any] = {}
    data: Any = None
    filler: Any = None
    if kind == "scalars":
        attr = fd.scalars.WhichOneof("data")
        if attr is not None:
            container = getattr(fd.scalars, attr)
            header = _header(container, "data")
            data, filler = _read_repeated(container)
    elif kind == "vectors":
        attr, dim, header, data, filler = _read_vectors(fd)
    elif kind == "struct_arrays":
        data = [_read(sub) for sub in fd.struct_arrays.fields]
    stored = (data[0].rows if data else 0) if kind == "struct_arrays" else (len(data) if data is not None else 0)
    rows, valid, compact = _validity(fd, stored)
    return _Column(
        type=fd.type,
        field_name=fd.field_name,
        field_id=fd.field_id,
        is_dynamic=fd.is_dynamic,
        kind=kind,
        attr=attr,
        dim=dim,
        header=header,
        rows=rows,
        valid=valid,
        compact=compact,
        data=data,
        filler=filler,
    )


def _read_vectors(fd: schema_pb2.FieldData) -> tuple[str | None, int, dict[str, Any], Any, Any]:
    """A vector column's kind, dim, header, rows (an array, or a list of sparse/array rows) and filler."""
    dim = fd.vectors.dim
    attr = fd.vectors.WhichOneof("data")
    header: dict[str, Any] = {}
    data: Any = None
    filler: Any = None
    if attr == "float_vector":
        flat = np.array(fd.vectors.float_vector.data, dtype=np.float32)
        if dim <= 0 and flat.size:
            raise ValueError(f"field {fd.field_name!r}: float vector without dim")
        data = flat.reshape(-1, dim) if dim > 0 else flat.reshape(0, 0)
    elif attr in _BYTE_VECTOR_WIDTH:
        raw = getattr(fd.vectors, attr)
        width = _BYTE_VECTOR_WIDTH[attr](dim)
        if width <= 0 or len(raw) % width:
            if raw:
                raise ValueError(
                    f"field {fd.field_name!r}: {len(raw)} bytes do not split into rows of {attr} dim {dim}"
                )
            width = max(width, 0)
        data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width) if width else (np.empty((0, 0), dtype=np.uint8))
    elif attr in _VECTOR_LIST_MEMBER:
        member = _VECTOR_LIST_MEMBER[attr]
        container = getattr(fd.vectors, attr)
        header = _header(container, member)
        data, filler = _read_repeated(container, member)
    elif attr is not None:
        raise ValueError(f"field {fd.field_name!r}: unsupported vector kind {attr}")
    return attr, dim, header, data, filler


def _validity(fd: schema_pb2.FieldData, stored: int) -> tuple[int, np.ndarray | None, bool]:
    """Rows, the valid mask (None without one) and whether only the valid rows' values are stored."""
    if not len(fd.valid_data):
        return stored, None, False
    valid = np.array(fd.valid_data, dtype=np.bool_)
    rows = len(valid)
    if stored == rows:
        return rows, valid, False
    if stored != int(valid.sum()):
        raise ValueError(
            f"field {fd.field_name!r}: {stored} values for {rows} rows of which {int(valid.sum())} are valid"
        )
    return rows, valid, True


def _write(col: _Column) -> schema_pb2.FieldData:
    fd = schema_pb2.FieldData(
        type=col.type,
        field_name=col.field_name,
        field_id=col.field_id,
        is_dynamic=col.is_dynamic,
    )
    if col.valid is not None:
        fd.valid_data.extend(col.valid.tolist())
    if col.kind == "scalars":
        fd.scalars.SetInParent()
        if col.attr is not None:
            container = getattr(fd.scalars, col.attr)
            container.SetInParent()
            for key, value in col.header.items():
                setattr(container, key, value)
            _write_repeated(container, col.data)
    elif col.kind == "vectors":
        # null-only rows of a nullable vector carry no payload member (as pymilvus sends them);
        # zero rows keep it, so that decoders still see the kind
        with_payload = col.attr is not None and (col.stored > 0 or col.valid is None or col.rows == 0)
        fd.vectors.SetInParent()
        fd.vectors.dim = col.dim
        if with_payload and col.attr is not None:
            if col.attr == "float_vector":
                fd.vectors.float_vector.SetInParent()
                _write_repeated(fd.vectors.float_vector, col.data)
            elif col.attr in _BYTE_VECTOR_WIDTH:
                setattr(fd.vectors, col.attr, col.data.tobytes())
            else:
                container = getattr(fd.vectors, col.attr)
                container.SetInParent()
                for key, value in col.header.items():
                    setattr(container, key, value)
                if col.attr == "sparse_float_vector" and container.dim:
                    # exact max dim of the rows kept; 0 stays 0 (pymilvus row inserts leave it unset)
                    container.dim = _sparse_dim(col.data)
                _write_repeated(container, col.data, _VECTOR_LIST_MEMBER[col.attr])
    elif col.kind == "struct_arrays":
        fd.struct_arrays.SetInParent()
        fd.struct_arrays.fields.extend([_write(sub) for sub in col.data])
    return fd


def _gather(data: Any, idx: np.ndarray, kind: str | None) -> Any:
    if kind == "struct_arrays":
        return [_take(sub, idx) for sub in data]
    if data is None:
        return None
    if isinstance(data, np.ndarray):
        return data[idx]
    return [data[i] for i in idx.tolist()]


def _take(col: _Column, idx: np.ndarray) -> _Column:
    valid = col.valid[idx] if col.valid is not None else None
    if col.compact:
        assert col.valid is not None and valid is not None
        physical = (np.cumsum(col.valid, dtype=np.int64) - 1)[idx[valid]]
    else:
        physical = idx
    return _Column(
        type=col.type,
        field_name=col.field_name,
        field_id=col.field_id,
        is_dynamic=col.is_dynamic,
        kind=col.kind,
        attr=col.attr,
        dim=col.dim,
        header=dict(col.header),
        rows=len(idx),
        valid=valid,
        compact=col.compact,
        data=_gather(col.data, physical, col.kind),
        filler=col.filler,
    )


def _relayout(col: _Column, compact: bool) -> _Column:
    """The same column with its payload padded or compact."""
    if col.compact == compact or col.valid is None:
        return col
    if col.kind == "struct_arrays":
        raise ValueError(f"field {col.field_name!r}: cannot mix struct array layouts")
    valid = col.valid
    data: Any
    if compact:
        data = _gather(col.data, np.flatnonzero(valid), col.kind)
    elif isinstance(col.data, np.ndarray):
        data = np.zeros((col.rows, *col.data.shape[1:]), dtype=col.data.dtype)
        data[valid] = col.data
    elif col.data is None:
        data = None
    else:
        data = [col.filler] * col.rows
        for pos, value in zip(np.flatnonzero(valid).tolist(), col.data, strict=True):
            data[pos] = value
    return _Column(**{**col.__dict__, "compact": compact, "data": data})


def _strict_layout(col: _Column) -> bool | None:
    """True/False when the column is surely compact/padded; None when both read the same."""
    if col.valid is None or bool(col.valid.all()):
        return None
    return col.compact


def _concat_columns(cols: Sequence[_Column]) -> _Column:
    first = cols[0]
    kinds = {c.kind for c in cols if c.kind is not None}
    attrs = {c.attr for c in cols if c.attr is not None}
    if len(kinds) > 1 or len(attrs) > 1:
        raise ValueError(f"field {first.field_name!r}: parts disagree on the column kind")
    kind = next(iter(kinds), None)
    attr = next(iter(attrs), None)
    typed = [c for c in cols if c.attr is not None] or list(cols)

    dims = {c.dim for c in cols if c.kind == "vectors" and c.stored}
    if len(dims) > 1:
        raise ValueError(f"field {first.field_name!r}: parts disagree on dim {sorted(dims)}")
    layouts = {s for s in map(_strict_layout, cols) if s is not None}
    if len(layouts) > 1:
        # mixed sources: fall back to what pymilvus decodes (vectors compact, scalars padded)
        compact = kind == "vectors"
    else:
        compact = next(iter(layouts), False)
    cols = [_relayout(c, compact) for c in cols]

    valid: np.ndarray | None = None
    if any(c.valid is not None for c in cols):
        valid = np.concatenate([c.valid if c.valid is not None else np.ones(c.rows, dtype=np.bool_) for c in cols])

    data = _concat_struct(first, cols) if kind == "struct_arrays" else _concat_data(cols, typed)
    header = dict(typed[0].header)
    if "dim" in header:  # any part with a dim keeps the concatenation's dim set
        header["dim"] = max(int(c.header.get("dim", 0)) for c in typed)
    dim = max((c.dim for c in typed), default=0)
    return _Column(
        type=first.type,
        field_name=first.field_name,
        field_id=first.field_id,
        is_dynamic=first.is_dynamic,
        kind=kind,
        attr=attr,
        dim=dim,
        header=header,
        rows=sum(c.rows for c in cols),
        valid=valid,
        compact=compact and valid is not None,
        data=data,
        filler=typed[0].filler,
    )


def _concat_struct(first: _Column, cols: Sequence[_Column]) -> list[_Column]:
    """A struct column's sub-columns, each concatenated over the parts (named as in the first part)."""
    data = []
    for name in [sub.field_name for sub in first.data]:
        subs = []
        for c in cols:
            by_name = {s.field_name: s for s in c.data}
            if name not in by_name:
                raise ValueError(f"struct field {first.field_name!r} lacks {name!r}")
            subs.append(by_name[name])
        data.append(_concat_columns(subs))
    return data


def _concat_data(cols: Sequence[_Column], typed: Sequence[_Column]) -> Any:
    """The parts' values one after another: one array, or one list of rows."""
    payloads = [c.data for c in cols if c.data is not None and len(c.data)]
    if not payloads:
        return typed[0].data
    if isinstance(payloads[0], np.ndarray):
        return np.concatenate(payloads)
    return list(itertools.chain.from_iterable(payloads))


def _field_rows(fd: schema_pb2.FieldData) -> int:
    if len(fd.valid_data):
        return len(fd.valid_data)
    kind = fd.WhichOneof("field")
    if kind == "scalars":
        attr = fd.scalars.WhichOneof("data")
        return len(getattr(fd.scalars, attr).data) if attr else 0
    if kind == "vectors":
        attr = fd.vectors.WhichOneof("data")
        dim = fd.vectors.dim
        if attr == "float_vector":
            return len(fd.vectors.float_vector.data) // dim if dim > 0 else 0
        if attr in _BYTE_VECTOR_WIDTH:
            width = _BYTE_VECTOR_WIDTH[attr](dim)
            return len(getattr(fd.vectors, attr)) // width if width > 0 else 0
        if attr in _VECTOR_LIST_MEMBER:
            return len(getattr(getattr(fd.vectors, attr), _VECTOR_LIST_MEMBER[attr]))
        return 0
    if kind == "struct_arrays":
        subs = fd.struct_arrays.fields
        return _field_rows(subs[0]) if len(subs) else 0
    return 0


def _read_parts(
    parts: Sequence[Sequence[schema_pb2.FieldData]],
) -> tuple[list[list[_Column]], list[schema_pb2.FieldData] | None]:
    """Columns of the parts that have rows, and the fields of the first part that has any."""
    schema: list[schema_pb2.FieldData] | None = None
    read: list[list[_Column]] = []
    for part in parts:
        if not part:
            continue
        if schema is None:
            schema = list(part)
        if num_rows(part) == 0:
            continue
        read.append([_read(fd) for fd in part])
    return read, schema


def _concat_parts(read: list[list[_Column]]) -> list[_Column]:
    names = [c.field_name for c in read[0]]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate field names in {names}")
    out = []
    for name in names:
        cols = []
        for part in read:
            match = [c for c in part if c.field_name == name]
            if not match:
                raise ValueError(f"a part with rows lacks field {name!r}")
            cols.append(match[0])
        out.append(_concat_columns(cols))
    for part in read[1:]:
        extra = {c.field_name for c in part} - set(names)
        if extra:
            raise ValueError(f"parts disagree on fields: {sorted(extra)}")
    return out


# public API ---------------------------------------------------------------------------


def num_rows(fields_data: Sequence[schema_pb2.FieldData]) -> int:
    """Number of rows of a column set, read from its first field (0 when empty)."""
    if not fields_data:
        return 0
    return _field_rows(fields_data[0])


def take_rows(fields_data: Sequence[schema_pb2.FieldData], rows: Rows) -> list[schema_pb2.FieldData]:
    """New columns holding only ``rows`` (in that order; repeats allowed)."""
    if not fields_data:
        return []
    cols = [_read(fd) for fd in fields_data]
    idx = _rows_index(rows, cols[0].rows)
    for col in cols[1:]:
        if col.rows != cols[0].rows:
            raise ValueError(f"field {col.field_name!r} has {col.rows} rows, {cols[0].field_name!r} has {cols[0].rows}")
    return [_write(_take(col, idx)) for col in cols]


def concat(
    parts: Sequence[Sequence[schema_pb2.FieldData]],
) -> list[schema_pb2.FieldData]:
    """Row-wise concatenation of same-schema column sets, matched by field name.

    Parts without rows are skipped (they may lack fields); when no part has rows the
    columns of the first non-empty part come back with zero rows.
    """
    read, schema = _read_parts(parts)
    if not read:
        return take_rows(schema, []) if schema else []
    return [_write(col) for col in _concat_parts(read)]


def concat_take(parts: Sequence[Sequence[schema_pb2.FieldData]], rows: Rows) -> list[schema_pb2.FieldData]:
    """``take_rows(concat(parts), rows)`` without building the intermediate messages."""
    read, schema = _read_parts(parts)
    if not read:
        return take_rows(schema or [], rows)
    sizes = np.array([part[0].rows for part in read], dtype=np.int64)
    idx = _rows_index(rows, int(sizes.sum()))
    # gather each part's selected rows first, so only kept rows are ever concatenated
    ends = np.cumsum(sizes)
    part_of = np.searchsorted(ends, idx, side="right")
    by_part = np.argsort(part_of, kind="stable")
    pieces = []
    for p, part in enumerate(read):
        local = idx[by_part][part_of[by_part] == p] - (ends[p] - sizes[p])
        pieces.append([_take(col, local) for col in part])
    back = np.empty(len(idx), dtype=np.int64)
    back[by_part] = np.arange(len(idx))
    return [_write(_take(col, back)) for col in _concat_parts(pieces)]


def ids_len(ids: schema_pb2.IDs) -> int:
    """Number of primary keys in ``ids``."""
    which = ids.WhichOneof("id_field")
    return len(getattr(ids, which).data) if which else 0


def ids_values(ids: schema_pb2.IDs) -> np.ndarray | list[str]:
    """Primary keys: an int64 array for int ids, a list of str for string ids."""
    which = ids.WhichOneof("id_field")
    if which == "str_id":
        return list(ids.str_id.data)
    if which == "int_id":
        return np.array(ids.int_id.data, dtype=np.int64)
    return np.empty(0, dtype=np.int64)


def ids_take(ids: schema_pb2.IDs, rows: Rows) -> schema_pb2.IDs:
    """New IDs holding only ``rows`` (in that order; repeats allowed)."""
    idx = _rows_index(rows, ids_len(ids))
    out = schema_pb2.IDs()
    which = ids.WhichOneof("id_field")
    if which == "int_id":
        out.int_id.SetInParent()
        out.int_id.data.extend(np.array(ids.int_id.data, dtype=np.int64)[idx].tolist())
    elif which == "str_id":
        out.str_id.SetInParent()
        values = ids.str_id.data
        out.str_id.data.extend([values[i] for i in idx.tolist()])
    return out


def ids_concat(parts: Sequence[schema_pb2.IDs]) -> schema_pb2.IDs:
    """Concatenation of IDs of one kind (int or str); empty parts are skipped."""
    kinds = {p.WhichOneof("id_field") for p in parts if ids_len(p)}
    if len(kinds) > 1:
        raise ValueError("cannot concatenate int and string primary keys")
    kind = next(iter(kinds), None) or next((w for w in (p.WhichOneof("id_field") for p in parts) if w), None)
    out = schema_pb2.IDs()
    if kind == "int_id":
        out.int_id.SetInParent()
        arrays = [np.array(p.int_id.data, dtype=np.int64) for p in parts if ids_len(p)]
        if arrays:
            out.int_id.data.extend(np.concatenate(arrays).tolist())
    elif kind == "str_id":
        out.str_id.SetInParent()
        for p in parts:
            if ids_len(p):
                out.str_id.data.extend(p.str_id.data)
    return out
