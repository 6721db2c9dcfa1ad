"""Search index: a LanceDB table of photos, and the search API.

`PhotoIndex` owns the table in `<state_dir>/index/`; `IndexSink` plugs it into
the pipeline; `Filters` and `Hit` are what the query service passes and gets.
"""

from __future__ import annotations

from photovault.index import _lancelog  # noqa: F401  (before lancedb loads)
from photovault.index.filters import Filters, Near
from photovault.index.records import FaceRecord, PhotoRecord, record_from_photo
from photovault.index.schema import SCHEMA_VERSION, IndexSchemaError, IndexTooNewError
from photovault.index.store import Hit, IndexSettings, IndexSink, PhotoIndex

__all__ = [
    "SCHEMA_VERSION",
    "FaceRecord",
    "Filters",
    "Hit",
    "IndexSchemaError",
    "IndexSettings",
    "IndexSink",
    "IndexTooNewError",
    "Near",
    "PhotoIndex",
    "PhotoRecord",
    "record_from_photo",
]
