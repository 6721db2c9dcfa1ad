"""Table layouts of the search index and the version that guards them.

The index is derived data (everything in it can be rebuilt from the catalog),
but rebuilding a large library costs hours of re-reading analyzer results, so
the layout is versioned like the catalog (rclip's `DB.VERSION`): an older
index is migrated forward step by step, a newer one is refused with a message
that says what to do, instead of being silently misread.

The version lives in `meta.json` beside the LanceDB tables, written
atomically (temp file + rename), because LanceDB has no place for
database-wide metadata and a one-row meta table would itself need a schema.

Decision on the CLIP vector: it is a nullable column of `photos`, not a
separate table. Searches filter and rank in one LanceDB query (prefiltered
vector search), and a library without a CLIP model simply has null vectors;
null rows never appear in vector results and are skipped by index training.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from photovault.versioning import StoreTooNewError, StoreVersionError

log = logging.getLogger(__name__)

# 1: first layout. 2: paths stored losslessly (records.storable escapes
#    backslashes too; same columns). 3: the unused `faces` and `people` tables
#    dropped (people.sqlite3 holds faces and names; photos keep the names).
# 4: recognized text (`ocr_text`, `ocr_joined`) and place columns (`country_code`,
#    `country`, `region`, `city`, `place_keys`), after `vector`.
# 5: videos: `kind`, `duration`, `tag_times`, `text_times` and `person_times`
#    after the place columns, and the `frames` table (each sampled frame's CLIP
#    vector, by file id and time).
SCHEMA_VERSION = 5
META_FILE = "meta.json"

PHOTOS = "photos"
FRAMES = "frames"


class IndexSchemaError(StoreVersionError):
    """The index on disk cannot be used by this version of photovault."""


class IndexTooNewError(IndexSchemaError, StoreTooNewError):
    """The index was written by a newer photovault: refused, never rebuilt, since
    the newer version can still read it."""


TAG_TYPE = pa.struct(
    [
        pa.field("tag", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("source", pa.string()),
    ]
)
LABEL_TYPE = pa.struct(
    [
        pa.field("synset", pa.string()),
        pa.field("label", pa.string()),
        pa.field("score", pa.float32()),
    ]
)


TEXT_AND_PLACE = [
    pa.field("ocr_text", pa.string()),
    pa.field("ocr_joined", pa.string()),
    pa.field("country_code", pa.string()),
    pa.field("country", pa.string()),
    pa.field("region", pa.string()),
    pa.field("city", pa.string()),
    pa.field("place_keys", pa.list_(pa.string())),
]


#: When a tag was seen best in a video: {"tag", "at"} for the tags that have a time.
TAG_TIME_TYPE = pa.struct([pa.field("tag", pa.string()), pa.field("at", pa.float64())])

#: When a recognized line was read in a video: {"text", "at"} for the lines that have a time.
TEXT_TIME_TYPE = pa.struct([pa.field("text", pa.string()), pa.field("at", pa.float64())])
#: When a person was seen in a video: {"person", "at"}, the time of their best face.
PERSON_TIME_TYPE = pa.struct([pa.field("person", pa.string()), pa.field("at", pa.float64())])

VIDEO_COLUMNS = [
    pa.field("kind", pa.string()),  # "photo", "video", "motion_photo"; null: photo
    pa.field("duration", pa.float64()),  # seconds, videos only
    pa.field("tag_times", pa.list_(TAG_TIME_TYPE)),
    pa.field("text_times", pa.list_(TEXT_TIME_TYPE)),
    pa.field("person_times", pa.list_(PERSON_TIME_TYPE)),
]


def photos_schema(vector_dim: int) -> pa.Schema:
    """One row per catalogued file (not per content hash): a search hit is a path.

    `tag_keys` and `people_keys` are lowercased lookup lists derived from
    `tags` and `people`, so tag and person filters are plain `array_has`
    predicates that LanceDB evaluates (and can index) before the limit.
    `taken_local` is the capture wall-clock time without offset: "after May 1"
    means the photographer's May 1, whatever time zone the camera was in.

    `ocr_text` is the recognized text, a line per line; `ocr_joined` the same
    folded with only letters and digits kept in each line (records.joined_text),
    which an n-gram full-text index serves for substring matches across OCR's
    joined and split words. `place_keys` are the folded names of the place
    (town, region, country, country code) a place filter compares with.
    """
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("share", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("abs_path", pa.string()),
            pa.field("sha256", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime_ns", pa.int64()),
            pa.field("taken_at", pa.string()),
            pa.field("taken_local", pa.timestamp("us")),
            pa.field("lat", pa.float64()),
            pa.field("lon", pa.float64()),
            pa.field("camera", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("tags", pa.list_(TAG_TYPE)),
            pa.field("tag_keys", pa.list_(pa.string())),
            pa.field("labels", pa.list_(LABEL_TYPE)),
            pa.field("people", pa.list_(pa.string())),
            pa.field("people_keys", pa.list_(pa.string())),
            pa.field("person_ids", pa.list_(pa.int64())),
            pa.field("dhash", pa.string()),
            # the same 64 bits as a signed integer: `similar` scans this column of
            # the whole library, and a fixed-width column reads ~10x faster
            pa.field("dhash_int", pa.int64()),
            pa.field("search_text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), vector_dim), nullable=True),
            # schema 4: after `vector`, where its migration adds them
            *TEXT_AND_PLACE,
            # schema 5: likewise after those
            *VIDEO_COLUMNS,
        ]
    )


def frames_schema(vector_dim: int) -> pa.Schema:
    """One row per sampled frame of a video: its file id (the `photos` row), its
    time in seconds and its CLIP vector. Searches find the moment here; the
    video's own row holds the clip vector (the normalised mean of these)."""
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("at", pa.float64(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), vector_dim), nullable=False),
        ]
    )


# A migration takes the LanceDB connection and the stored meta, changes the
# tables in place and returns the meta of the next version.
Migration = Callable[[Any, dict[str, Any]], dict[str, Any]]


# Version 1 stored a path that is not UTF-8 with its bad bytes as \xNN and
# every backslash as it was, so `a\xe9` was ambiguous. Version 2 also escapes
# each backslash (`a\\b`). The step doubles every backslash of a stored path,
# then undoes that for the \xNN escapes version 1 made (NN is 80-ff: only bytes
# that are not UTF-8 were escaped). It misreads only a UTF-8 name that itself
# contains such text ("\x9f"); the consistency check rewrites such a row.
_PATH_V2 = (
    r"regexp_replace(regexp_replace({col}, '\\', '\\', 'g'),"
    r" '\\\\(x[89a-f][0-9a-f])', '\${{1}}', 'g')"
)


def _paths_escape_backslashes(db: Any, meta: dict[str, Any]) -> dict[str, Any]:
    if PHOTOS not in db.list_tables().tables:
        return meta
    photos = db.open_table(PHOTOS)
    for col in ("path", "abs_path"):
        photos.update(where=f"strpos({col}, '\\') > 0", values_sql={col: _PATH_V2.format(col=col)})
    return meta


def _drop_face_tables(db: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Versions 1-2 kept `faces` and `people` tables that nothing read (the
    people store is the source of faces and names); they and `face_dim` go."""
    tables = db.list_tables().tables
    for name in ("faces", "people"):
        if name in tables:
            db.drop_table(name)
    meta.pop("face_dim", None)
    return meta


def _add_text_and_place(db: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Version 4 adds the recognized text and place columns, empty (null): a row
    gets them when its photo is next written, as the new analyzer results
    arrive. The n-gram full-text index is built by maintenance."""
    if PHOTOS not in db.list_tables().tables:
        return meta
    photos = db.open_table(PHOTOS)
    have = set(photos.schema.names)
    missing = [f for f in TEXT_AND_PLACE if f.name not in have]
    if missing:
        photos.add_columns(missing)
    return meta


def _add_videos(db: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Version 5 adds the video columns, empty (null: a photo), and the `frames`
    table, empty, which opening the index creates (tables.IndexTables, with the
    vector size it is configured for): videos get rows as they are analyzed."""
    if PHOTOS not in db.list_tables().tables:
        return meta
    photos = db.open_table(PHOTOS)
    have = set(photos.schema.names)
    missing = [f for f in VIDEO_COLUMNS if f.name not in have]
    if missing:
        photos.add_columns(missing)
    return meta


# from-version -> step to from-version + 1.
MIGRATIONS: dict[int, Migration] = {
    1: _paths_escape_backslashes,
    2: _drop_face_tables,
    3: _add_text_and_place,
    4: _add_videos,
}


def read_meta(index_dir: Path) -> dict[str, Any] | None:
    path = index_dir / META_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexSchemaError(
            f"{path} is not valid JSON ({exc}); remove {index_dir} "
            "to rebuild the index from the catalog"
        ) from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("schema_version"), int):
        raise IndexSchemaError(
            f"{path} has no integer schema_version; remove {index_dir} "
            "to rebuild the index from the catalog"
        )
    return meta


def write_meta(index_dir: Path, meta: Mapping[str, Any]) -> None:
    """Write meta.json atomically: a crash leaves the old file or the new one."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".meta.", suffix=".tmp", dir=index_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(meta), fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, index_dir / META_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_version(
    index_dir: Path,
    db: Any,
    *,
    vector_dim: int,
    migrations: Mapping[int, Migration] | None = None,
    current: int = SCHEMA_VERSION,
) -> dict[str, Any]:
    """Bring the stored meta to `current`, or refuse. Returns the meta in use.

    A fresh directory gets the current version. A vector dimension other than
    the stored one is refused too: mixing 512-d and 768-d vectors in one column
    is impossible, and the fix (rebuild after a model change) is the user's call.
    """
    steps = MIGRATIONS if migrations is None else migrations
    meta = read_meta(index_dir)
    if meta is None:
        meta = {"schema_version": current, "vector_dim": vector_dim}
        write_meta(index_dir, meta)
        return meta
    version = meta["schema_version"]
    if version > current:
        raise IndexTooNewError(
            f"the search index in {index_dir} has schema version {version}, but this "
            f"photovault understands versions up to {current}: upgrade photovault, or "
            f"remove {index_dir} to rebuild the index from the catalog"
        )
    while version < current:
        step = steps.get(version)
        if step is None:
            raise IndexSchemaError(
                f"no migration from index schema version {version} to {version + 1}; "
                f"remove {index_dir} to rebuild the index from the catalog"
            )
        log.info("migrating search index %s from schema version %d", index_dir, version)
        meta = dict(step(db, dict(meta)))
        meta["schema_version"] = version + 1
        write_meta(index_dir, meta)
        version += 1
    have = meta.get("vector_dim", vector_dim)
    if have != vector_dim:
        raise IndexSchemaError(
            f"the search index in {index_dir} stores vector_dim={have}, but {vector_dim} "
            f"was configured (a different model?): remove {index_dir} to rebuild it"
        )
    return meta
