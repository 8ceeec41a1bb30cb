"""The copies of every shard: primary, replicas, moves; roles, states and applied positions."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import (
    delete,
    select,
    update,
)

from mishards.meta.store.base import StoreBase
from mishards.meta.store.model import (
    COPY_FILLING,
    COPY_READY,
    ROLE_FENCED,
    ROLE_RETIRED,
    CopyRecord,
    CopyRow,
    MutationRow,
    NotFound,
    ShardRow,
    _copy_info,
    _set_applied,
)


class CopyStore(StoreBase):
    """Where each shard's copies are and how far each has applied the log."""

    def copies(self) -> list[CopyRecord]:
        with self.session() as s:
            last = {(r.collection_id, r.idx): r.last_seq for r in s.scalars(select(ShardRow))}
            return [
                _copy_info(r, last.get((r.collection_id, r.shard), 0))
                for r in s.scalars(select(CopyRow).order_by(CopyRow.collection_id, CopyRow.shard, CopyRow.instance))
            ]

    def primary_of(self, collection_id: int, shard: int) -> str | None:
        """The instance identity of the shard's primary copy; None when the catalog has no such shard."""
        with self.session() as s:
            return s.scalar(
                select(CopyRow.instance).where(
                    CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.role == "primary"
                )
            )

    def copy_info(self, collection_id: int, shard: int, instance: str) -> CopyRecord | None:
        """One copy's recorded state and its shard's log end; None when the catalog has no such copy."""
        with self.session() as s:
            row = s.get(CopyRow, (collection_id, shard, instance))
            if row is None:
                return None
            shard_row = s.get(ShardRow, (collection_id, shard))
            return _copy_info(row, shard_row.last_seq if shard_row is not None else 0)

    def mark_applied(
        self, collection_id: int, shard: int, instance: str, seq: int, released: Collection[str] = ()
    ) -> None:
        """Record that a copy applied the log up to `seq`, and drop entries every copy has applied.

        Copies in `released` (replicas down for too long) no longer hold the log back; the
        primary always does.
        """
        with self.write() as s, s.begin():
            _set_applied(s, collection_id, shard, instance, seq)
            positions = list(
                s.scalars(
                    select(CopyRow.applied_seq).where(
                        CopyRow.collection_id == collection_id,
                        CopyRow.shard == shard,
                        CopyRow.role.not_in([ROLE_FENCED, ROLE_RETIRED]),  # gone: they never apply again
                        (CopyRow.role == "primary") | CopyRow.instance.not_in(list(released)),
                    )
                )
            )
            upto = min(positions) if positions else seq
            s.execute(
                delete(MutationRow).where(
                    MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq <= upto
                )
            )

    def add_copy(self, collection_id: int, shard: int, instance: str, role: str, state: str) -> None:
        with self.write() as s, s.begin():
            s.merge(
                CopyRow(
                    collection_id=collection_id,
                    shard=shard,
                    instance=instance,
                    role=role,
                    state=state,
                    applied_seq=0,
                    reason="",
                )
            )

    def remove_copy(self, collection_id: int, shard: int, instance: str) -> int:
        with self.write() as s, s.begin():
            s.execute(
                delete(CopyRow).where(
                    CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance
                )
            )
            return self._bump(s, "catalog_version")

    def switch_primary(self, collection_id: int, shard: int, new: str, old_role: str, reason: str = "") -> int:
        """Make the copy on `new` the shard's primary; the old primary's copy takes `old_role`. One transaction."""
        with self.write() as s, s.begin():
            row = s.get(ShardRow, (collection_id, shard))
            if row is None:
                raise NotFound(f"{collection_id}/{shard}")
            old = row.primary
            row.primary = new
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == old)
                .values(
                    role=old_role,
                    state=old_role if old_role in (ROLE_FENCED, ROLE_RETIRED) else COPY_FILLING,
                    reason=reason,
                )
            )
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == new)
                .values(role="primary", state=COPY_READY, reason="")
            )
            return self._bump(s, "catalog_version")

    def set_copy_role(
        self, collection_id: int, shard: int, instance: str, role: str, state: str, reason: str = ""
    ) -> None:
        with self.write() as s, s.begin():
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance)
                .values(role=role, state=state, reason=reason)
            )

    def set_copy_position(self, collection_id: int, shard: int, instance: str, seq: int) -> None:
        """Set where a (re)filled copy starts applying the log; it holds the log from there."""
        with self.write() as s, s.begin():
            _set_applied(s, collection_id, shard, instance, seq)

    def set_copy_state(self, collection_id: int, shard: int, instance: str, state: str, reason: str = "") -> None:
        with self.write() as s, s.begin():
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance)
                .values(state=state, reason=reason)
            )
