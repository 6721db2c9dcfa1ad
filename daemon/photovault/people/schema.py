"""The people database's schema: its version and the migrations that reach it.

Kept apart from the store so backup and restore can name the version without
loading the store, and so a migration is reviewed on its own.
"""

from __future__ import annotations

from photovault.config import StateLayout

SCHEMA_VERSION = 2
DB_NAME = StateLayout.PEOPLE


MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE people (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        photo TEXT NOT NULL,
        idx INTEGER NOT NULL,
        model TEXT NOT NULL,
        box TEXT NOT NULL,
        score REAL NOT NULL,
        embedding BLOB NOT NULL,
        person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
        assigned_by TEXT,
        UNIQUE (photo, model, idx)
    );
    CREATE INDEX faces_person ON faces(person_id);
    CREATE INDEX faces_model_person ON faces(model, person_id);
    CREATE TABLE rejections (
        face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        PRIMARY KEY (face_id, person_id)
    );
    """,
    # Full clustering passes: what changed since the last pass, and the merges to suggest.
    # Faces that version 1 left waiting are waiting here too, and a pass is pending.
    2: """
    ALTER TABLE faces ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX faces_model_seq ON faces(model, seq);
    CREATE INDEX faces_photo ON faces(photo);
    UPDATE faces SET seq = 1 WHERE person_id IS NULL;
    INSERT OR REPLACE INTO meta (key, value)
        SELECT 'changes', '1' WHERE EXISTS (SELECT 1 FROM faces);
    CREATE TABLE suggestions (
        a INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        distance REAL NOT NULL,
        face_a INTEGER NOT NULL,
        face_b INTEGER NOT NULL,
        PRIMARY KEY (a, b)
    );
    """,
}
