"""fedsage's data layer: ``DbConnection`` for Datasphere, SQL URLs and DuckDB.

See ``docs/data.md``.  Nothing connects at import.
"""

from __future__ import annotations

from .config import EmbeddedWarehouseWarning, UnknownConfigKeyWarning
from .connection import DbConnection
from .sources import Query, Table

__all__ = ["DbConnection", "EmbeddedWarehouseWarning", "Query", "Table",
           "UnknownConfigKeyWarning"]
