"""The durable mutation log: appends, aborts, reads of entries and positions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)

from mishards.meta.store.base import StoreBase
from mishards.meta.store.model import (
    LogEntry,
    MutationRow,
    NotFound,
    NoTimestamp,
    ShardRow,
)


class LogStore(StoreBase):
    """Each shard's log of writes, in order."""

    # --- the mutation log ---------------------------------------------------------------------------

    def append_batch(
        self, appends: Sequence[tuple[int, Sequence[tuple[int, str, bytes]], bool]], stamp: Callable[[], int | None]
    ) -> list[tuple[list[int], int] | None]:
        """Append several writes in one transaction (one commit, one fsync: group commit).

        Each write is (collection id, [(shard, method, payload)], abortable) and gets its entries'
        positions and its own timestamp from `stamp()`, drawn while the collections' shard rows
        are locked, so on every shard a later position always has a later timestamp. A write
        whose collection is gone gets None. Raises NoTimestamp (nothing appended) when `stamp()`
        gives None.
        """
        with self.write() as s, s.begin():
            ids = sorted({cid for cid, _, _ in appends})
            shards = {
                (r.collection_id, r.idx): r
                for r in s.scalars(
                    select(ShardRow)
                    .where(ShardRow.collection_id.in_(ids))
                    .order_by(ShardRow.collection_id, ShardRow.idx)
                    .with_for_update()
                )
            }
            rows: list[dict[str, Any]] = []
            out: list[tuple[list[int], int] | None] = []
            for cid, entries, abortable in appends:
                if any((cid, shard) not in shards for shard, _, _ in entries):
                    out.append(None)
                    continue
                ts = stamp()
                if ts is None:
                    raise NoTimestamp(str(cid))
                seqs = []
                for shard, method, payload in entries:
                    row = shards[(cid, shard)]
                    row.last_seq += 1
                    seqs.append(row.last_seq)
                    rows.append(
                        {
                            "collection_id": cid,
                            "shard": shard,
                            "seq": row.last_seq,
                            "ts": ts,
                            "method": method,
                            "payload": payload,
                            "abortable": abortable,
                            "aborted": False,
                        }
                    )
                out.append((seqs, ts))
            if rows:
                s.execute(insert(MutationRow), rows)
            return out

    def append_mutations(
        self, collection_id: int, entries: list[tuple[int, str, bytes]], stamp: Callable[[], int | None]
    ) -> tuple[list[int], int]:
        """One write's (shard, method, payload) entries in one transaction: their positions and the write's ts.

        Raises NotFound when the collection is gone (see `append_batch`).
        """
        done = self.append_batch([(collection_id, entries, False)], stamp)[0]
        if done is None:
            raise NotFound(str(collection_id))
        return done

    def abort_entry(self, collection_id: int, shard: int, seq: int) -> None:
        """Record that the primary rejected an abortable entry: every copy skips it from now on."""
        with self.write() as s, s.begin():
            s.execute(
                update(MutationRow)
                .where(MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq == seq)
                .values(aborted=True)
            )

    def entry_sizes(self, collection_id: int, shard: int, after_seq: int) -> list[tuple[int, int]]:
        """(position, payload bytes) of the shard's entries after `after_seq`, in order."""
        with self.session() as s:
            rows = s.execute(
                select(MutationRow.seq, func.length(MutationRow.payload))
                .where(
                    MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq > after_seq
                )
                .order_by(MutationRow.seq)
            )
            return [(int(seq), int(size or 0)) for seq, size in rows]

    def log_start(self, collection_id: int, shard: int) -> int:
        """The first position the log still holds for the shard (its end + 1 when it holds none)."""
        with self.session() as s:
            first = s.scalar(
                select(func.min(MutationRow.seq)).where(
                    MutationRow.collection_id == collection_id, MutationRow.shard == shard
                )
            )
            if first is not None:
                return int(first)
            row = s.get(ShardRow, (collection_id, shard))
            return (row.last_seq if row is not None else 0) + 1

    def log_ends(self) -> dict[tuple[int, int], int]:
        """(collection, shard) -> the position of the shard's last log entry."""
        with self.session() as s:
            return {(r.collection_id, r.idx): r.last_seq for r in s.scalars(select(ShardRow))}

    def entries_after(
        self, collection_id: int, shard: int, after_seq: int, limit: int = 64, upto: int | None = None
    ) -> list[LogEntry]:
        """The shard's entries after `after_seq` (and up to `upto`), in order, at most `limit`."""
        with self.session() as s:
            query = select(MutationRow).where(
                MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq > after_seq
            )
            if upto is not None:
                query = query.where(MutationRow.seq <= upto)
            rows = s.scalars(query.order_by(MutationRow.seq).limit(limit))
            return [
                LogEntry(r.collection_id, r.shard, r.seq, r.ts, r.method, r.payload, r.abortable, r.aborted)
                for r in rows
            ]

    def log_length(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(MutationRow)) or 0)
