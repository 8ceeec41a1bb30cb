"""Single-shard pass-through: a backend's search or query answer forwarded as bytes.

When a read touches one shard and needs no merge, decoding the backend's SearchResults or
QueryResults and encoding them again for the client costs the router more than the rest of
the request. Instead the answer travels as the backend's bytes, and only its top-level
fields are rewritten on the protobuf wire format:

- `status` is read (it decides retries and errors: those still go through `rename_status`);
- `collection_name` becomes the client's logical name;
- `session_ts` (the backend's clock) and search-iterator v2 tokens are dropped;
- everything else (the hits, `fields_data`, scores, ids) is copied untouched.

The answer the client decodes equals the one the decoding path gives (unit-tested against
protobuf's own parser on generated messages).
"""

from __future__ import annotations

from collections.abc import Iterator

from pymilvus.grpc_gen import common_pb2

from mishards.common.errors import OK
from mishards.common.milvus_messages import EncodedAnswer

# Field numbers of milvus.proto.milvus.SearchResults / QueryResults / schema.SearchResultData.
STATUS = 1
SEARCH_RESULTS = 2
COLLECTION_NAME = 3
SEARCH_SESSION_TS = 4
QUERY_SESSION_TS = 5
ITERATOR_V2_RESULTS = 11  # SearchResultData.search_iterator_v2_results: one backend's iterator state

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
OK_STATUS_FIELD = b"\x0a\x00"  # `status` set to an empty (OK) Status, as `SearchResults(status=Status())` encodes it


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message (truncated, or a wire type Milvus never sends)."""


Buffer = bytes | memoryview


def _varint(buf: Buffer, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(buf)
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            break
    raise WireError("truncated or overlong varint")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def fields(buf: Buffer) -> Iterator[tuple[int, int, int, int]]:
    """`(number, start, payload_start, end)` of every top-level field, in order.

    `buf[start:end]` is the whole field (tag included); for a length-delimited field
    `buf[payload_start:end]` is its payload. Raises WireError on malformed input.
    """
    pos, end = 0, len(buf)
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == _VARINT:
            _, pos = _varint(buf, pos)
            payload = start
        elif wire_type == _LEN:
            size, payload = _varint(buf, pos)
            pos = payload + size
        elif wire_type == _FIXED64:
            payload, pos = start, pos + 8
        elif wire_type == _FIXED32:
            payload, pos = start, pos + 4
        else:  # groups: not in Milvus's protocol
            raise WireError(f"wire type {wire_type}")
        if pos > end:
            raise WireError("truncated field")
        yield number, start, payload, pos


def _string_field(number: int, text: str) -> bytes:
    data = text.encode()
    return encode_varint(number << 3 | _LEN) + encode_varint(len(data)) + data if data else b""


def status_of(buf: Buffer) -> common_pb2.Status:
    """The `status` (field 1) of a SearchResults or QueryResults on the wire; absent or empty: OK."""
    payload = b""
    for number, _, start, end in fields(buf):
        if number == STATUS:
            payload += bytes(buf[start:end])  # repeated occurrences of a message field merge
    return common_pb2.Status.FromString(payload) if payload else OK


def _without(buf: Buffer, dropped: int) -> bytes | None:
    """`buf` with every top-level field `dropped` left out; None when it has none."""
    kept: list[Buffer] = []
    found = False
    for number, start, _, end in fields(buf):
        if number == dropped:
            found = True
        else:
            kept.append(buf[start:end])
    return b"".join(kept) if found else None


def search_results(raw: bytes, collection_name: str) -> EncodedAnswer:
    """The client's SearchResults from one shard's: OK status, the backend's `results`, the logical name.

    As the decoding path builds it: a fresh OK status, the shard's results without its
    iterator-v2 state, `collection_name`; no `session_ts`.
    """
    view = memoryview(raw)
    out: list[Buffer] = [OK_STATUS_FIELD]
    for number, start, payload, end in fields(raw):
        if number != SEARCH_RESULTS:
            continue
        inner = _without(view[payload:end], ITERATOR_V2_RESULTS)
        if inner is None:
            out.append(view[start:end])
        else:
            out.append(encode_varint(SEARCH_RESULTS << 3 | _LEN) + encode_varint(len(inner)) + inner)
    out.append(_string_field(COLLECTION_NAME, collection_name))
    return EncodedAnswer(b"".join(out), OK)


def query_results(raw: bytes, collection_name: str, status: common_pb2.Status = OK) -> EncodedAnswer:
    """The client's QueryResults from one shard's: every field kept but `collection_name` (the
    logical one instead) and `session_ts` (dropped). `status`: the one it carries (for telemetry)."""
    view = memoryview(raw)
    out: list[Buffer] = []
    for number, start, _, end in fields(raw):
        if number not in (COLLECTION_NAME, QUERY_SESSION_TS):
            out.append(view[start:end])
    out.append(_string_field(COLLECTION_NAME, collection_name))
    return EncodedAnswer(b"".join(out), status)


class RawAnswer:
    """A backend's answer as received, with its status read off the wire (what `call_shards` checks)."""

    __slots__ = ("data", "status")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.status = status_of(data)
