"""Whole-table reads on PostgreSQL, split into page ranges read in parallel.

One ``COPY`` of a table is bound by one server backend formatting the rows and one
client thread receiving them, each about one CPU core.  For a plain table of several
ranges fedsage reads it the way ``pg_dump --jobs`` and DuckDB's PostgreSQL scanner do:

1. a coordinator session opens a ``REPEATABLE READ`` transaction, exports its snapshot
   (``pg_export_snapshot``) and sizes the table in heap pages;
2. up to ``workers`` sessions import that snapshot, so together they see exactly the
   rows one ``SELECT *`` would have seen at that moment, whatever commits meanwhile;
3. the sessions read ranges of heap pages (``WHERE ctid >= '(a,0)' AND ctid <
   '(b,0)'``: a TID range scan, PostgreSQL 14 and later), at most ``workers + 1``
   ranges in flight, and the results are handed on in page order.  The output is the
   table in physical order, as one sequential scan reads it, and memory is bounded by
   the ranges in flight, whatever the table's size.

:func:`scan_plan` says when this does not apply (a view, a partitioned table, a server
before 14, a small table, a connection inside an open transaction whose own uncommitted
rows another session could not see, one worker); the caller then reads one stream.

Sessions get the caller's credentials and ``search_path``, are read-only, and use UTC
as the time zone (as the single-stream path does).  Values written into SQL text here
are integers computed here or literals quoted by the server (``quote_literal``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ...errors import DataError

__all__ = ["CopySession", "ScanPlan", "ordered_map", "scan_plan", "worker_count"]

logger = logging.getLogger(__name__)

#: Heap pages per range read as Arrow: 8 MB of table with the default 8 kB block size
#: (each range is a row group of a Parquet channel; smaller ones wrote slower).
CHUNK_PAGES = 1024
#: Heap pages per range copied as CSV: smaller ranges keep peak memory flat in the row
#: count (docs/data.md has the measurements).
CSV_CHUNK_PAGES = 256
#: The environment variable that sets the number of sessions (1 turns parallel reads off).
WORKERS_ENV = "FEDSAGE_PG_WORKERS"
_MIN_SERVER = 140000  # TID range scans
_TABLE_KINDS = ("r", "m")  # tables and materialized views: both have heap pages

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")


def worker_count() -> int:
    """Sessions per parallel read: ``FEDSAGE_PG_WORKERS``, else the cores (at most 4).

    Raises
    ------
    DataError
        If ``FEDSAGE_PG_WORKERS`` is not a positive integer.
    """
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return min(4, os.cpu_count() or 1)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"{WORKERS_ENV} must be a positive integer (1 reads one stream); "
                        f"got {text!r}")
    return value


@dataclass(frozen=True)
class ScanPlan:
    """How to read one table in page ranges, valid while its coordinator is open."""

    #: The table as quoted SQL (``"schema"."name"`` or ``"name"``).
    relation: str
    #: ``quote_literal`` of the exported snapshot id.
    snapshot: str
    #: ``quote_literal`` of the caller's ``search_path``.
    search_path: str
    #: ``(first page, end page or None for "to the end")`` of each range, in order.
    ranges: tuple[tuple[int, int | None], ...]
    #: Sessions to open.
    workers: int

    def range_query(self, start: int, stop: int | None) -> str:
        """``SELECT *`` of the rows on pages ``[start, stop)``."""
        where = f"ctid >= '({int(start)},0)'::tid"
        if stop is not None:
            where += f" AND ctid < '({int(stop)},0)'::tid"
        return f"SELECT * FROM {self.relation} WHERE {where}"

    def setup_statements(self) -> list[str]:
        """What each worker session runs first: the snapshot, search_path, time zone."""
        return [
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            f"SET TRANSACTION SNAPSHOT {self.snapshot}",
            f"SELECT set_config('search_path', {self.search_path}, true)",
            "SET LOCAL TimeZone = 'UTC'",
        ]


@contextlib.contextmanager
def scan_plan(conn: Any, conninfo: str, relation: str, workers: int,
              chunk_pages: int | None = None) -> Iterator[ScanPlan | None]:
    """Plan a parallel read of ``relation``; yield ``None`` when one stream should read it.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's session (not in a transaction): its ``search_path`` is used.
    conninfo : str
        A libpq connection string with the caller's credentials.
    relation : str
        The table as quoted SQL.
    workers : int
        The most sessions to read with.
    chunk_pages : int or None, default=None
        Heap pages per range (default :data:`CHUNK_PAGES`); a table needs two ranges.

    Yields
    ------
    ScanPlan or None
        The plan, valid until the context exits (the coordinator holds the snapshot).
    """
    import psycopg
    from psycopg import pq

    chunk_pages = chunk_pages or CHUNK_PAGES
    if workers < 2 or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        yield None
        return
    with contextlib.ExitStack() as stack:
        plan = None
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT quote_literal(current_setting('search_path'))")
                search_path = cursor.fetchone()[0]
            conn.rollback()
            coordinator = stack.enter_context(psycopg.connect(conninfo, autocommit=True))
            coordinator.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            coordinator.execute(f"SELECT set_config('search_path', {search_path}, true)")
            row = coordinator.execute(
                "SELECT c.relkind, pg_relation_size(c.oid) / current_setting('block_size')::int,"
                " current_setting('server_version_num')::int, quote_literal(pg_export_snapshot())"
                " FROM pg_class c WHERE c.oid = to_regclass(%s)",
                [relation],
            ).fetchone()
        except psycopg.Error as exc:  # e.g. a standby, which cannot export snapshots
            logger.debug("parallel read of %s not planned: %s", relation, exc)
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            row = None
        if row is not None and row[0] in _TABLE_KINDS and row[2] >= _MIN_SERVER \
                and row[1] >= 2 * chunk_pages:
            pages = int(row[1])
            # Pages appended after sizing hold no row of this snapshot; the last range is
            # open-ended all the same.
            ranges = tuple((s, s + chunk_pages if s + chunk_pages < pages else None)
                           for s in range(0, pages, chunk_pages))
            plan = ScanPlan(relation, row[3], search_path, ranges, min(workers, len(ranges)))
        if plan is not None:
            yield plan  # the coordinator holds the snapshot until the read ends
            return
    yield None


class Session(Protocol):
    """A worker session: closed when the read ends."""

    def close(self) -> None: ...


SessionT = TypeVar("SessionT", bound=Session)


class _Pool(Generic[SessionT]):
    """Sessions lent to one task at a time."""

    def __init__(self, sessions: Sequence[SessionT]) -> None:
        self._free: queue.SimpleQueue[SessionT] = queue.SimpleQueue()
        for session in sessions:
            self._free.put(session)

    @contextlib.contextmanager
    def session(self) -> Iterator[SessionT]:
        session = self._free.get()
        try:
            yield session
        finally:
            self._free.put(session)


def ordered_map(func: Callable[[SessionT, T], R], items: Iterable[T],
                sessions: Sequence[SessionT]) -> Iterator[R]:
    """Yield ``func(session, item)`` for each item, in item order.

    Each call gets a session of its own, one thread per session; at most
    ``len(sessions) + 1`` results exist at a time.  When the consumer stops early or a
    call fails, the calls not yet started are cancelled and the running ones awaited.
    The sessions are not closed here.
    """
    pool: _Pool[SessionT] = _Pool(sessions)

    def run(item: T) -> R:
        with pool.session() as session:
            return func(session, item)

    pending: list[Future[R]] = []
    with ThreadPoolExecutor(max_workers=len(sessions),
                            thread_name_prefix="fedsage-pg-read") as executor:
        try:
            for item in items:
                pending.append(executor.submit(run, item))
                if len(pending) > len(sessions):
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


def open_sessions(opener: Callable[[], SessionT], count: int) -> list[SessionT]:
    """Open up to ``count`` sessions; stop at the first refusal (e.g. ``max_connections``).

    Raises
    ------
    Exception
        The opener's error, if not even one session opens.
    """
    sessions: list[SessionT] = []
    while len(sessions) < count:
        try:
            sessions.append(opener())
        except Exception:  # the driver's own error class: libpq's or ADBC's
            if not sessions:
                raise
            logger.debug("parallel read: %d of %d sessions opened", len(sessions), count)
            break
    return sessions


class CopySession:
    """A libpq session that reads ``COPY ... TO STDOUT`` into memory without per-row Python.

    psycopg's ``Copy`` iterator costs about 2 us of Python per row; reading libpq's copy
    buffers directly costs under half of that and releases the GIL while waiting, so
    several sessions read in parallel from threads.

    Parameters
    ----------
    conninfo : str
        The libpq connection string.
    setup : sequence of str
        Statements to run first (see :meth:`ScanPlan.setup_statements`).

    Raises
    ------
    DataError
        If the connection or a setup statement fails.
    """

    def __init__(self, conninfo: str, setup: Sequence[str]) -> None:
        import psycopg
        from psycopg import pq

        self._pq, self._psycopg_error = pq, psycopg.Error
        self._pg = pq.PGconn.connect(conninfo.encode())
        try:
            if self._pg.status != pq.ConnStatus.OK:
                raise DataError(f"postgresql: opening a read session failed: "
                                f"{self._error()}")
            for statement in setup:
                self._expect(self._pg.exec_(statement.encode()),
                             (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK), statement)
        except BaseException:
            self._pg.finish()
            raise

    def _error(self, result: Any = None) -> str:
        raw = (result.error_message if result is not None else b"") or self._pg.error_message
        return " ".join(raw.decode(errors="replace").split())

    def _expect(self, result: Any, statuses: tuple[Any, ...], statement: str) -> Any:
        if result is None or result.status not in statuses:
            raise DataError(f"postgresql: reading the table failed: {self._error(result)}\n"
                            f"  statement: {statement}")
        return result

    def copy_out(self, query: str, options: str = "FORMAT csv") -> tuple[bytearray, int]:
        """Run ``COPY (query) TO STDOUT (options)``; return its output and row count.

        Raises
        ------
        DataError
            If the server reports an error.
        """
        pq, pg = self._pq, self._pg
        statement = f"COPY ({query}) TO STDOUT ({options})"
        try:
            pg.send_query(statement.encode())
        except self._psycopg_error as exc:
            raise DataError(f"postgresql: sending a read failed: {self._error()}") from exc
        started = pg.get_result()
        data = bytearray()
        if started is not None and started.status == pq.ExecStatus.COPY_OUT:
            get = pg.get_copy_data
            while True:
                size, chunk = get(0)
                if size < 0:
                    break
                data += chunk
            done = pg.get_result()
        else:
            done = started
        while pg.get_result() is not None:  # libpq needs the queue drained, even on errors
            pass
        done = self._expect(done, (pq.ExecStatus.COMMAND_OK,), statement)
        return data, int(done.command_tuples or 0)

    def close(self) -> None:
        """Close the connection (its read-only transaction ends with it)."""
        self._pg.finish()
