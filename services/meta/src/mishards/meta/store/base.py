"""What every store shares: the engine, read and write sessions, the counters."""

from __future__ import annotations

from sqlalchemy import (
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from mishards.meta.store.model import (
    _WRITE,
    CollectionSpec,
    CounterRow,
    _sqlite_begin,
    _sqlite_pragmas,
)


class StoreBase:
    """The engine and sessions of the meta database. Methods are synchronous and each runs in one transaction."""

    def __init__(self, url: str, echo: bool = False) -> None:
        sqlite = url.startswith("sqlite")
        connect_args: dict[str, object] = {"check_same_thread": False, "timeout": 30} if sqlite else {}
        self.engine: Engine = create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)
        self._ready: dict[int, tuple[int, CollectionSpec]] = {}  # ready_collection's cache

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from mishards.meta.migrations import upgrade

        upgrade(self.engine)

    def session(self) -> Session:
        """A session for reads."""
        return self._sessions()

    def write(self) -> Session:
        """A session for one write transaction (`with store.write() as s, s.begin():`)."""
        return self._write_sessions()

    # --- counters -------------------------------------------------------------------------

    def _bump(self, s: Session, name: str, by: int = 1) -> int:
        row = s.get(CounterRow, name, with_for_update=True)
        if row is None:
            row = CounterRow(name=name, value=0)
            s.add(row)
        row.value += by
        s.flush()
        return row.value

    def counter(self, name: str) -> int:
        with self.session() as s:
            row = s.get(CounterRow, name)
            return row.value if row else 0

    def catalog_version(self) -> int:
        return self.counter("catalog_version")

    def allocate_ids(self, count: int, first_id: int = 1) -> int:
        """Reserve `count` ids; returns the first of the block [begin, begin+count)."""
        with self.write() as s, s.begin():
            row = s.get(CounterRow, "next_id", with_for_update=True)
            if row is None:
                row = CounterRow(name="next_id", value=first_id)
                s.add(row)
            begin = row.value
            row.value = begin + count
            return begin

    def reserve_timestamp_window(self, upto_ms: int) -> int:
        """Persist that hybrid timestamps up to physical `upto_ms` may be issued; returns the old bound."""
        with self.write() as s, s.begin():
            row = s.get(CounterRow, "tso_max_ms", with_for_update=True)
            if row is None:
                row = CounterRow(name="tso_max_ms", value=0)
                s.add(row)
            old = row.value
            row.value = max(old, upto_ms)
            return old

    def bump_catalog_version(self) -> int:
        with self.write() as s, s.begin():
            return self._bump(s, "catalog_version")
