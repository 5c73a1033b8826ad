"""Check every batch-scoring argument and open input and target, before anything runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import _validation as check
from ..errors import ConfigurationError
from . import codec
from .engine import DEFAULT_BATCH_ROWS, MB, Plan, ScoringRequest, select_columns
from .inputs import Target, check_input_kind, check_target_free, open_input, resolve_target
from .progress import RowsProgress

if TYPE_CHECKING:
    from ..data import DbConnection

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "IF_EXISTS",
    "MAX_PAYLOAD_MB",
    "check_arguments",
    "checked_target",
    "opened_request",
]

IF_EXISTS = ("fail", "replace", "append")
MAX_PAYLOAD_MB = 100  # SageMaker's MaxPayloadInMB limit
#: DuckDB's memory_limit while a whole table is scored (see DbConnection.bounded_memory):
#: its buffer pool would otherwise keep every block the read touched.  A scan pins a few
#: blocks per column and thread, and staged rows are not in DuckDB (a spool file): 32 MB
#: holds 5M rows' caller at ~220 MB PSS where 128 MB held it at ~325, no slower.
SCAN_ENGINE_MEMORY = 32 * MB
#: The same for a view, whose query may join, aggregate or sort (DuckDB spills those to
#: its temporary directory past the limit; more room, fewer spills).
VIEW_ENGINE_MEMORY = 128 * MB


def _columns(value: Any, param: str, caller: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(c, str) and c for c in value)
    ):
        raise ConfigurationError(
            f"the {param} parameter of {caller} must be a non-empty list of column names; "
            f"got {value!r} instead"
        )
    if len(set(value)) != len(value):
        raise ConfigurationError(
            f"the {param} parameter of {caller} names a column twice: {value!r}"
        )
    return list(value)


def check_arguments(
    caller: str,
    *,
    keep_columns: Any,
    features: Any,
    content_type: Any,
    accept: Any,
    if_exists: Any,
    workers: Any,
    batch_rows: Any,
    max_payload: Any,
    prediction_column: Any,
    connection: Any,
    progress: Any,
) -> Plan:
    """Check the plain arguments (nothing is opened); return the :class:`Plan`.

    Raises
    ------
    ConfigurationError
        Naming the first parameter with a value fedsage cannot use.
    """
    from ..data import DbConnection

    keep = _columns(keep_columns, "keep_columns", caller) or []
    chosen = _columns(features, "features", caller)
    if chosen is not None and set(chosen) & set(keep):
        raise ConfigurationError(
            f"the features and keep_columns parameters of {caller} share columns "
            f"{sorted(set(chosen) & set(keep))!r}; a column is either sent to the model or kept"
        )
    given = content_type is not None
    kind = codec.check_content_type(content_type, "content_type", caller) if given else codec.CSV
    answer = None if accept is None else codec.check_content_type(accept, "accept", caller)
    if if_exists not in IF_EXISTS:
        raise ConfigurationError(
            f"the if_exists parameter of {caller} must be one of {', '.join(IF_EXISTS)}; "
            f"got {if_exists!r} instead"
        )
    if workers is not None:
        check.check_positive_int(workers, "workers", caller)
    check.check_positive_int(batch_rows, "batch_rows", caller)
    if (
        isinstance(max_payload, bool)
        or not isinstance(max_payload, int | float)
        or not 0 < max_payload <= MAX_PAYLOAD_MB
    ):
        raise ConfigurationError(
            f"the max_payload parameter of {caller} must be a number of MB above 0 and at most "
            f"{MAX_PAYLOAD_MB} (SageMaker's MaxPayloadInMB); got {max_payload!r} instead"
        )
    if not isinstance(prediction_column, str) or not prediction_column.strip():
        raise ConfigurationError(
            f"the prediction_column parameter of {caller} must be a non-empty column name; "
            f"got {prediction_column!r} instead"
        )
    if connection is not None and not isinstance(connection, DbConnection):
        raise ConfigurationError(
            f"the connection parameter of {caller} must be a DbConnection or None; got "
            f"{type(connection).__name__} instead"
        )
    check.check_bool(progress, "progress", caller)
    return Plan(
        keep_columns=keep,
        features=chosen,
        content_type=kind,
        content_type_given=given,
        content_type_reason="given by the caller" if given else "the default",
        accept=answer,
        batch_rows=batch_rows,
        max_payload=int(max_payload * MB),
        prediction_column=prediction_column,
        if_exists=if_exists,
    )


def checked_target(
    data: Any, target: Any, plan: Plan, *, connection: DbConnection | None
) -> Target:
    """Check the input's kind, resolve the target (on ``connection``, else a query input's
    connection) and, with ``if_exists='fail'``, check that it does not exist; nothing is
    opened or written.

    Raises
    ------
    ConfigurationError
        For an input or target of no known kind, or an illegal target name.
    DataError
        If the target exists and ``if_exists='fail'``.
    """
    from ..data.sources import Query

    check_input_kind(data, connection)
    default = connection
    if default is None and isinstance(data, Query):
        from ..data import DbConnection

        default = data.connection if isinstance(data.connection, DbConnection) else None
    where = resolve_target(target, default)
    check_target_free(where, plan.if_exists)
    return where


@contextlib.contextmanager
def opened_request(
    data: Any,
    where: Target,
    plan: Plan,
    *,
    connection: DbConnection | None,
    workers: int | None,
    progress: bool,
    instance_count: int = 1,
    instance_type: str | None = None,
) -> Iterator[ScoringRequest]:
    """Open the input and check its columns; close it at the end.

    The input's first batch is read here (a local model server may be starting
    meanwhile: a missing table or a bad query stops it).

    Raises
    ------
    ConfigurationError
        For an input of no known kind, or columns the input does not have.
    DataError
        If the input cannot be read.
    """
    needed = None if plan.features is None else [*plan.keep_columns, *plan.features]
    source = open_input(data, connection, columns=needed)
    display: RowsProgress | None = None
    ok = False
    bounded = contextlib.ExitStack()
    try:
        if source.table_scan and source.connection is not None:
            limit = VIEW_ENGINE_MEMORY if source.view else SCAN_ENGINE_MEMORY
            bounded.enter_context(source.connection.bounded_memory(limit))
        select_columns(source.schema, plan)
        display = RowsProgress(source.rows) if progress else None
        yield ScoringRequest(
            source, where, plan, workers, display, instance_count, instance_type
        )
        ok = True
    finally:
        source.close()
        bounded.close()
        if display is not None:
            display.close(ok)
