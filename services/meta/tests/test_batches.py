"""Runs of log entries merged into one backend call: rows and keys kept in order, or no merge."""

from __future__ import annotations

from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.meta.batches import merge_deletes, merge_inserts, mergeable_run
from mishards.meta.store import LogEntry


def insert(ids: list[int], partition: str = "", binary: bool = False) -> milvus_pb2.InsertRequest:
    request = milvus_pb2.InsertRequest(collection_name="mishards_1_s0", partition_name=partition, num_rows=len(ids))
    request.fields_data.add(field_name="id", type=schema_pb2.Int64).scalars.long_data.data.extend(ids)
    vec = request.fields_data.add(field_name="v", type=schema_pb2.BinaryVector if binary else schema_pb2.FloatVector)
    vec.vectors.dim = 8 if binary else 2
    if binary:
        vec.vectors.binary_vector = bytes(ids)
    else:
        vec.vectors.float_vector.data.extend(float(i) for i in ids for _ in range(2))
    request.fields_data.add(field_name="s", type=schema_pb2.VarChar).scalars.string_data.data.extend(map(str, ids))
    return request


def entry(seq: int, method: str, payload: bytes = b"x", aborted: bool = False) -> LogEntry:
    return LogEntry(1, 0, seq, 0, method, payload, aborted=aborted)


def test_inserts_merge_row_after_row() -> None:
    merged = merge_inserts([insert([1, 2]), insert([3]), insert([4, 5])])
    assert merged is not None and merged.num_rows == 5
    ids, vec, s = merged.fields_data
    assert list(ids.scalars.long_data.data) == [1, 2, 3, 4, 5]
    assert list(vec.vectors.float_vector.data) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0]
    assert vec.vectors.dim == 2 and list(s.scalars.string_data.data) == ["1", "2", "3", "4", "5"]


def test_byte_packed_vectors_are_joined_not_replaced() -> None:
    merged = merge_inserts([insert([1, 2], binary=True), insert([3], binary=True)])
    assert merged is not None and merged.fields_data[1].vectors.binary_vector == bytes([1, 2, 3])


def test_inserts_of_other_partitions_fields_or_with_nulls_do_not_merge() -> None:
    assert merge_inserts([insert([1]), insert([2], partition="p")]) is None
    other = insert([2])
    del other.fields_data[2]
    assert merge_inserts([insert([1]), other]) is None
    nullable = insert([3])
    nullable.fields_data[2].valid_data.extend([False])
    assert merge_inserts([insert([1]), nullable]) is None


def test_deletes_by_key_merge_into_one_key_list() -> None:
    one = milvus_pb2.DeleteRequest(collection_name="c", expr='pk in ["a]b","c"]')
    two = milvus_pb2.DeleteRequest(collection_name="c", expr='pk in ["d"]')
    merged = merge_deletes([one, two])
    assert merged is not None and merged.expr == 'pk in ["a]b","c","d"]'
    assert merge_deletes([one, milvus_pb2.DeleteRequest(collection_name="c", expr="other in [1]")]) is None
    assert (
        merge_deletes([one, milvus_pb2.DeleteRequest(collection_name="c", partition_name="p", expr='pk in ["e"]')])
        is None
    )
    assert merge_deletes([one, milvus_pb2.DeleteRequest(collection_name="c", expr="pk > 3")]) is None


def test_a_run_is_entries_of_one_kind_upserts_and_aborted_entries_alone() -> None:
    run = [entry(1, "Insert"), entry(2, "Insert"), entry(3, "Delete"), entry(4, "Delete")]
    assert mergeable_run(run) == 2 and mergeable_run(run[2:]) == 2
    assert mergeable_run([entry(1, "Upsert"), entry(2, "Upsert")]) == 1
    assert mergeable_run([entry(1, "Insert"), entry(2, "Insert", aborted=True)]) == 1
