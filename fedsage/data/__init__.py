"""fedsage's data layer: ``DbConnection`` for Datasphere, SQL URLs and DuckDB.

See ``docs/data.md``.  Nothing connects at import.
"""

from __future__ import annotations

from .connection import DbConnection
from .sources import Query, Table

__all__ = ["DbConnection", "Query", "Table"]
