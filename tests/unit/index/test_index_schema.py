"""The index layout is versioned: older is migrated, newer is refused."""

from __future__ import annotations

import json

import pytest

from photovault.index import (
    SCHEMA_VERSION,
    IndexSchemaError,
    IndexSettings,
    IndexTooNewError,
    PhotoIndex,
)
from photovault.index.schema import read_meta, write_meta


def settings() -> IndexSettings:
    return IndexSettings(vector_dim=16, face_dim=4)


def test_a_fresh_index_records_the_current_schema_version(tmp_path):
    PhotoIndex(tmp_path / "index", settings()).close()

    meta = json.loads((tmp_path / "index" / "meta.json").read_text())

    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["vector_dim"] == 16


def test_an_index_from_a_newer_photovault_is_refused_with_a_clear_error(tmp_path):
    write_meta(tmp_path / "index", {"schema_version": SCHEMA_VERSION + 1})

    newer = SCHEMA_VERSION + 1
    with pytest.raises(IndexSchemaError, match=rf"schema version {newer}.*upgrade photovault"):
        PhotoIndex(tmp_path / "index", settings())


def test_an_index_from_a_newer_photovault_raises_its_own_error(tmp_path):
    write_meta(tmp_path / "index", {"schema_version": SCHEMA_VERSION + 1})

    with pytest.raises(IndexTooNewError):
        PhotoIndex(tmp_path / "index", settings())


def test_vaultd_refuses_an_index_of_a_later_schema_instead_of_moving_it_aside(tmp_path):
    # Not "newer" in the name: tmp_path holds it, and vaultd used to look for that word.
    from helpers.vault import write_config
    from photovault.app import Daemon
    from photovault.config import load

    config = load(write_config(tmp_path))
    folder = config.state_dir / "index"
    write_meta(folder, {"schema_version": SCHEMA_VERSION + 1, "vector_dim": 512})

    with pytest.raises(IndexTooNewError, match="upgrade photovault"):
        Daemon(config)

    assert read_meta(folder)["schema_version"] == SCHEMA_VERSION + 1
    assert sorted(p.name for p in config.state_dir.iterdir() if p.name.startswith("index")) == [
        "index"
    ]


def test_a_version_2_index_drops_its_unused_face_tables_and_keeps_its_photos(tmp_path):
    import lancedb
    import pyarrow as pa

    from .conftest import photo

    folder = tmp_path / "index"
    idx = PhotoIndex(folder, settings())
    idx.upsert([photo(1, people=["Alice"], person_ids=[7])])
    idx.close()
    db = lancedb.connect(str(folder))
    db.create_table(
        "faces",
        schema=pa.schema([pa.field("face_id", pa.string()), pa.field("sha256", pa.string())]),
    )
    db.create_table(
        "people",
        schema=pa.schema([pa.field("person_id", pa.int64()), pa.field("name", pa.string())]),
    )
    write_meta(folder, {**read_meta(folder), "schema_version": 2, "face_dim": 4})

    again = PhotoIndex(folder, settings())
    try:
        assert sorted(lancedb.connect(str(folder)).list_tables().tables) == ["frames", "photos"]
        meta = read_meta(folder)
        assert meta["schema_version"] == SCHEMA_VERSION
        assert "face_dim" not in meta
        from photovault.index import Filters

        assert [h.id for h in again.search(None, None, Filters(persons=["alice"]), 5)] == [1]
    finally:
        again.close()


def test_an_older_index_is_migrated_step_by_step(tmp_path):
    write_meta(
        tmp_path / "index", {"schema_version": SCHEMA_VERSION - 1, "vector_dim": 16, "face_dim": 4}
    )
    ran: list[int] = []

    def step(db, meta):
        ran.append(meta["schema_version"])
        return {**meta, "migrated": True}

    PhotoIndex(tmp_path / "index", settings(), migrations={SCHEMA_VERSION - 1: step}).close()

    assert ran == [SCHEMA_VERSION - 1]
    meta = read_meta(tmp_path / "index")
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["migrated"] is True


def test_an_older_index_without_a_migration_is_refused(tmp_path):
    write_meta(tmp_path / "index", {"schema_version": SCHEMA_VERSION - 1})

    with pytest.raises(IndexSchemaError, match="no migration"):
        PhotoIndex(tmp_path / "index", settings(), migrations={})


def test_a_different_vector_size_is_refused_instead_of_mixed(tmp_path):
    PhotoIndex(tmp_path / "index", settings()).close()

    with pytest.raises(IndexSchemaError, match="vector_dim=16"):
        PhotoIndex(tmp_path / "index", IndexSettings(vector_dim=512, face_dim=4))


def test_a_corrupt_meta_file_is_refused(tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "meta.json").write_text("{not json")

    with pytest.raises(IndexSchemaError, match="not valid JSON"):
        PhotoIndex(tmp_path / "index", settings())


def test_reopening_keeps_the_rows(tmp_path):
    from .conftest import photo

    idx = PhotoIndex(tmp_path / "index", settings())
    idx.upsert([photo(1)])
    idx.close()

    again = PhotoIndex(tmp_path / "index", settings())
    assert again.count() == 1
    from photovault.index import Filters

    assert [h.id for h in again.search(None, "misc", Filters(), 5)] == [1]
    again.close()


def test_lancedb_warnings_are_quieted_unless_the_operator_asks(tmp_path):
    import os
    import subprocess
    import sys

    code = "import os, photovault.index; print(os.environ['LANCEDB_LOG'])"
    env = {k: v for k, v in os.environ.items() if k != "LANCEDB_LOG"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "error"
    env["LANCEDB_LOG"] = "debug"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "debug"


def test_a_version_3_index_gains_text_and_place_columns_and_keeps_its_photos(tmp_path):
    import lancedb

    from photovault.index import Filters
    from photovault.index.records import photos_table
    from photovault.index.schema import TEXT_AND_PLACE, VIDEO_COLUMNS, photos_schema
    from photovault.results import Place

    from .conftest import photo

    folder = tmp_path / "index"
    new = {f.name for f in TEXT_AND_PLACE}
    v3 = pa_schema_without(photos_schema(16), new | {f.name for f in VIDEO_COLUMNS})
    old_row = photos_table([photo(1, tags=[{"tag": "Beach", "confidence": 0.9}])], 16)
    db = lancedb.connect(str(folder))
    db.create_table("photos", schema=v3).add(old_row.select(v3.names), on_bad_vectors="null")
    write_meta(folder, {"schema_version": 3, "vector_dim": 16})

    idx = PhotoIndex(folder, settings())
    try:
        assert read_meta(folder)["schema_version"] == SCHEMA_VERSION
        assert new <= set(idx.photos.schema.names)
        assert [h.id for h in idx.search(None, None, Filters(tags=["beach"]), 5)] == [1]
        assert idx.get(1)["place_keys"] is None
        idx.upsert([photo(2, text="PERINDUSTRIANBALAKONG", place=Place("PT", "Portugal"))])
        idx.flush()
        idx.maintain()
        assert [h.id for h in idx.search(None, "balakong", Filters(place="pt"), 5)] == [2]
        assert [h.id for h in idx.search(None, "beach", None, 5)] == [1]
    finally:
        idx.close()


def test_a_version_4_index_gains_video_columns_and_a_frames_table_and_keeps_its_photos(
    tmp_path,
):
    import lancedb
    import numpy as np

    from photovault.index.records import photos_table
    from photovault.index.schema import VIDEO_COLUMNS, photos_schema

    from .conftest import photo, unit

    folder = tmp_path / "index"
    v4 = pa_schema_without(photos_schema(16), {f.name for f in VIDEO_COLUMNS})
    old_row = photos_table([photo(1, vector=unit(np.arange(16) + 1.0))], 16)
    db = lancedb.connect(str(folder))
    db.create_table("photos", schema=v4).add(old_row.select(v4.names), on_bad_vectors="null")
    write_meta(folder, {"schema_version": 4, "vector_dim": 16})

    idx = PhotoIndex(folder, settings())
    try:
        assert read_meta(folder)["schema_version"] == SCHEMA_VERSION == 5
        assert {"kind", "duration", "tag_times", "text_times", "person_times"} <= set(
            idx.photos.schema.names
        )
        assert "frames" in lancedb.connect(str(folder)).list_tables().tables
        (hit,) = idx.search(np.arange(16) + 1.0, None, None, 5)
        assert (hit.id, hit.kind, hit.at) == (1, "photo", None)
        frame = unit(np.eye(16)[3])
        idx.upsert([photo(2, kind="video", vector=frame, frames=[(2.0, frame)])])
        idx.flush()
        assert idx.search(frame, None, None, 1)[0].at == 2.0
    finally:
        idx.close()


def test_a_version_5_index_of_a_development_build_gains_the_time_columns_it_lacks(tmp_path):
    import lancedb
    import numpy as np

    from photovault.index import Filters
    from photovault.index.records import photos_table
    from photovault.index.schema import photos_schema

    from .conftest import photo, unit

    folder = tmp_path / "index"
    early = pa_schema_without(photos_schema(16), {"text_times", "person_times"})
    old_row = photos_table([photo(1, vector=unit(np.arange(16) + 1.0))], 16)
    db = lancedb.connect(str(folder))
    db.create_table("photos", schema=early).add(old_row.select(early.names), on_bad_vectors="null")
    write_meta(folder, {"schema_version": 5, "vector_dim": 16})

    idx = PhotoIndex(folder, settings())
    try:
        assert {"text_times", "person_times"} <= set(idx.photos.schema.names)
        idx.upsert(
            [photo(2, kind="video", people=["Anna"], person_times=[{"person": "Anna", "at": 4.0}])]
        )
        idx.flush()
        assert [h.at for h in idx.search(None, None, Filters(persons=["anna"]), 5)] == [4.0]
        assert idx.get(1) is not None
    finally:
        idx.close()


def pa_schema_without(schema, names):
    import pyarrow as pa

    return pa.schema([f for f in schema if f.name not in names])
