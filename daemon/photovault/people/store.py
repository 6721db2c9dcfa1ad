"""People: faces grouped into persons that keep their ids across runs.

Stored in SQLite (`<state_dir>/people.sqlite3`, schema versioned like the
catalog) rather than recomputed from the catalog because what users do to
people (names, merges, "that is not her") must survive re-clustering,
restarts and re-analysis.

How faces become people:

1. `add_photo_faces()` stores a photo's faces. A new face joins the nearest
   *named* person at once when it is within `join_distance` (and was not
   rejected from them); every other face waits for the next pass.
2. `cluster()` is a full pass: density clustering (people/cluster.py) over
   *all* faces of the model, so the result is what clustering everything at
   once gives, whatever the order and batches in which photos arrived. The
   clusters are then mapped onto the people that exist:

   * a face that a person placed (named person, `assign`, `merge`) stays;
     such faces anchor their cluster, and the cluster's other faces join
     that person (the nearest anchor's person when several people share
     the cluster: those pairs are *suggested* for a merge, never merged);
   * every other cluster keeps the id of the unnamed person that holds most
     of its faces (greedy by overlap, each person to one cluster); the rest
     become new people (fresh ids, never reused: AUTOINCREMENT). Unnamed
     people whose faces all went elsewhere are merged away, and their
     rejections go with their faces;
   * a face rejected from a person never joins them again;
   * faces the clustering calls noise are nobody's ("unassigned").

   The pass reads a snapshot on its own connection and computes without the
   lock, so ingest and search go on; it writes its result in one
   transaction, so a `kill -9` at any moment leaves either the old or the
   new people, and the change counters below make the next start run it.
3. Users name, rename, merge, reject and assign; names are never changed or
   merged by a pass. `suggestions()` lists likely merges for a person to
   confirm (`vaultctl people suggest`).

Change counters in `meta` (all survive restarts): `changes` grows with every
face added, changed or removed and each face remembers the value (`seq`) of
its last change; `clustered` is the value the last finished pass had seen.
Faces with `seq > clustered` are "waiting"; `changes != clustered` (or other
clustering settings) means a pass is pending. `user_ops` grows with every
user operation (which also counts as a change, so a pass follows it and
refreshes the suggestions); a pass whose snapshot predates one is thrown
away and run again, so a pass never undoes what a person just did.

Re-analysing a photo matches the new faces to the old ones by box overlap, so
a face keeps its id and its person when a model bump re-runs the analyzer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from photovault.people.db import PeopleDB, PeopleError, PeopleVersionError
from photovault.people.passes import ClusterPasses, ClusterReport
from photovault.people.schema import DB_NAME, SCHEMA_VERSION

log = logging.getLogger(__name__)

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "ClusterReport",
    "PeopleDB",
    "PeopleError",
    "PeopleStore",
    "PeopleVersionError",
]


def iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class PeopleStore(ClusterPasses):
    """All people state for one recognition model. Thread-safe (one lock)."""

    # ------------------------------------------------------------------ faces in

    def add_photo_faces(self, photo: str, faces: list[dict[str, Any]]) -> list[int]:
        """Store (or replace) the faces of one photo; return their face ids in order.

        `photo` is the photo's stable key (its sha256). `faces` is the faces
        analyzer's result list; faces of another model than this store's are
        ignored, since their embeddings are not comparable. Storing the same
        faces again (a duplicate file, a restart) changes nothing.
        """
        faces = [f for f in faces if f.get("model", self.model) == self.model]
        with self._lock, self._tx() as conn:
            old = conn.execute(
                "SELECT id, box, score, embedding FROM faces WHERE photo = ? AND model = ? "
                "ORDER BY idx",
                (photo, self.model),
            ).fetchall()
            old_boxes = {r["id"]: json.loads(r["box"]) for r in old}
            old_rows = {r["id"]: r for r in old}
            conn.execute(
                "UPDATE faces SET idx = -id WHERE photo = ? AND model = ?", (photo, self.model)
            )
            ids: list[int] = []
            fresh: list[int] = []
            changed = False
            seq: int | None = None

            def next_seq() -> int:
                nonlocal seq
                if seq is None:
                    seq = self._bump("changes")
                return seq

            for idx, face in enumerate(faces):
                blob = np.asarray(face["embedding"], dtype=np.float32).tobytes()
                box = [float(v) for v in face["box"]]
                score = float(face.get("score", 0.0))
                match = max(old_boxes, key=lambda i: iou(old_boxes[i], box), default=None)
                if match is not None and iou(old_boxes[match], box) >= 0.5:
                    del old_boxes[match]
                    if old_rows[match]["embedding"] == blob:
                        conn.execute(
                            "UPDATE faces SET idx = ?, box = ?, score = ? WHERE id = ?",
                            (idx, json.dumps(box), score, match),
                        )
                    else:
                        conn.execute(
                            "UPDATE faces SET idx = ?, box = ?, score = ?, embedding = ?, "
                            "seq = ? WHERE id = ?",
                            (idx, json.dumps(box), score, blob, next_seq(), match),
                        )
                    ids.append(match)
                    continue
                cur = conn.execute(
                    "INSERT INTO faces (photo, idx, model, box, score, embedding, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (photo, idx, self.model, json.dumps(box), score, blob, next_seq()),
                )
                assert cur.lastrowid is not None
                ids.append(int(cur.lastrowid))
                fresh.append(int(cur.lastrowid))
            if old_boxes:
                next_seq()
                changed = True
                conn.executemany("DELETE FROM faces WHERE id = ?", [(i,) for i in old_boxes])
            if fresh:
                self._join_named(fresh)
            if changed:
                self._drop_empty_people(conn)
        return ids

    def _join_named(self, face_ids: list[int]) -> None:
        marks = ",".join("?" * len(face_ids))
        q_ids, _, queries = self._embeddings(f"id IN ({marks})", face_ids)
        c_ids, c_persons, candidates = self._embeddings(
            "person_id IN (SELECT id FROM people WHERE name IS NOT NULL)"
        )
        del c_ids
        nearest = self._nearest_person(queries, q_ids, candidates, c_persons, self._rejected())
        for face_id, (person, dist) in zip(q_ids, nearest, strict=True):
            if person is not None and dist <= self.join_distance:
                self._conn.execute(
                    "UPDATE faces SET person_id = ?, assigned_by = 'join' WHERE id = ?",
                    (person, face_id),
                )

    def remove_photo(self, photo: str) -> int:
        """Forget a deleted photo's faces; returns how many went."""
        return self.remove_photos([photo])

    def remove_photos(self, photos: Iterable[str]) -> int:
        """Forget deleted photos' faces; a person left with no faces goes too."""
        keys = [(p,) for p in photos]
        if not keys:
            return 0
        with self._lock, self._tx() as conn:
            gone = 0
            owners: set[int] = set()
            for key in keys:
                owners.update(
                    r[0]
                    for r in conn.execute(
                        "SELECT DISTINCT person_id FROM faces WHERE photo = ? "
                        "AND person_id IS NOT NULL",
                        key,
                    )
                )
                gone += conn.execute("DELETE FROM faces WHERE photo = ?", key).rowcount
            if gone:
                self._bump("changes")
                self._drop_empty_people(conn, owners)
        return gone

    def photos(self) -> list[str]:
        """Every photo key (sha256) that has faces here."""
        with self._reading() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT photo FROM faces")]

    # ------------------------------------------------------------------ user operations

    def _user_op(self) -> None:
        """A person changed people: passes running now are stale, and one more pass
        brings the clustering and the suggestions up to date with it."""
        self._bump("user_ops")
        self._bump("changes")

    def people(self) -> list[dict[str, Any]]:
        """[{"id", "name", "faces", "photos"}] of people with faces, most faces first."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT p.id, p.name, COUNT(f.id) AS faces, COUNT(DISTINCT f.photo) AS photos "
                "FROM people p JOIN faces f ON f.person_id = p.id "
                "GROUP BY p.id ORDER BY faces DESC, p.id"
            ).fetchall()
        return [dict(r) for r in rows]

    def person_by_name(self, name: str) -> int:
        row = self._conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PeopleError(f"no person named {name!r}")
        return int(row[0])

    def name(self, person_id: int, name: str) -> None:
        """Name a person; names are unique (merge two people instead of naming both)."""
        name = name.strip()
        if not name:
            raise PeopleError("a name must not be empty")
        with self._lock, self._tx() as conn:
            self._person(person_id)
            other = conn.execute(
                "SELECT id FROM people WHERE name = ? AND id != ?", (name, person_id)
            ).fetchone()
            if other is not None:
                raise PeopleError(
                    f"{name!r} is already person {other[0]}; merge {other[0]} and {person_id}"
                )
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (name, person_id))
            self._user_op()

    def rename(self, old: str, new: str) -> int:
        """Rename by name; returns the person id."""
        with self._lock:
            person_id = self.person_by_name(old)
            self.name(person_id, new)
            return person_id

    def merge(self, keep: int, other: int) -> int:
        """Move `other`'s faces into `keep` and delete `other`; returns `keep`.

        `keep` keeps its name, or takes `other`'s when it has none. A face
        that the user rejected from `keep` is left unassigned, not moved. The
        moved faces count as placed by a person: later passes keep them there.
        """
        if keep == other:
            raise PeopleError("cannot merge a person with itself")
        with self._lock, self._tx() as conn:
            a, b = self._person(keep), self._person(other)
            conn.execute(
                "UPDATE faces SET person_id = NULL, assigned_by = NULL WHERE person_id = ? "
                "AND id IN (SELECT face_id FROM rejections WHERE person_id = ?)",
                (other, keep),
            )
            conn.execute(
                "UPDATE faces SET person_id = ?, assigned_by = 'user' WHERE person_id = ?",
                (keep, other),
            )
            conn.execute(
                "INSERT OR IGNORE INTO rejections (face_id, person_id) "
                "SELECT face_id, ? FROM rejections WHERE person_id = ?",
                (keep, other),
            )
            conn.execute("DELETE FROM people WHERE id = ?", (other,))
            if a["name"] is None and b["name"] is not None:
                conn.execute("UPDATE people SET name = ? WHERE id = ?", (b["name"], keep))
            self._user_op()
        return keep

    def reject(self, face_id: int, person_id: int) -> None:
        """'This face is not that person': unassign it and never suggest it again."""
        with self._lock, self._tx() as conn:
            self._person(person_id)
            if conn.execute("SELECT 1 FROM faces WHERE id = ?", (face_id,)).fetchone() is None:
                raise PeopleError(f"no face with id {face_id}")
            conn.execute(
                "INSERT OR IGNORE INTO rejections (face_id, person_id) VALUES (?, ?)",
                (face_id, person_id),
            )
            conn.execute(
                "UPDATE faces SET person_id = NULL, assigned_by = NULL "
                "WHERE id = ? AND person_id = ?",
                (face_id, person_id),
            )
            self._user_op()

    def assign(self, face_id: int, person_id: int) -> None:
        """The user says this face is that person (overrides an earlier rejection)."""
        with self._lock, self._tx() as conn:
            self._person(person_id)
            conn.execute(
                "DELETE FROM rejections WHERE face_id = ? AND person_id = ?", (face_id, person_id)
            )
            if not conn.execute(
                "UPDATE faces SET person_id = ?, assigned_by = 'user' WHERE id = ?",
                (person_id, face_id),
            ).rowcount:
                raise PeopleError(f"no face with id {face_id}")
            self._user_op()

    def create_person(self, name: str) -> int:
        """A new named person (e.g. a name typed on a face no cluster holds yet)."""
        name = name.strip()
        if not name:
            raise PeopleError("a name must not be empty")
        with self._lock, self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO people (name, created_at) VALUES (?, ?)", (name, self._clock())
            )
            self._user_op()
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def photo_faces(self, photo: str) -> list[dict[str, Any]]:
        """[{"id", "box", "score", "person_id", "person"}] of one photo, in detector order."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT f.id, f.box, f.score, f.person_id, p.name FROM faces f "
                "LEFT JOIN people p ON p.id = f.person_id "
                "WHERE f.photo = ? AND f.model = ? AND f.idx >= 0 ORDER BY f.idx",
                (photo, self.model),
            ).fetchall()
        return [
            {
                "id": r["id"],
                "box": json.loads(r["box"]),
                "score": r["score"],
                "person_id": r["person_id"],
                "person": r["name"],
            }
            for r in rows
        ]

    def photos_of(self, person_id: int) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT DISTINCT photo FROM faces WHERE person_id = ?", (person_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def faces_of(self, person_id: int) -> list[dict[str, Any]]:
        """[{"id", "photo", "box", "score", "assigned_by"}] of one person, oldest first."""
        with self._reading() as conn:
            if conn.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone() is None:
                raise PeopleError(f"no person with id {person_id}")
            rows = conn.execute(
                "SELECT id, photo, box, score, assigned_by FROM faces "
                "WHERE person_id = ? ORDER BY id",
                (person_id,),
            ).fetchall()
        return [{**dict(r), "box": json.loads(r["box"])} for r in rows]

    def face(self, face_id: int) -> dict[str, Any]:
        """{"id", "photo", "box", "person_id"} of one face."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT id, photo, box, person_id FROM faces WHERE id = ?", (face_id,)
            ).fetchone()
        if row is None:
            raise PeopleError(f"no face with id {face_id}")
        return {**dict(row), "box": json.loads(row["box"])}

    def person_of(self, face_id: int) -> int | None:
        row = self._conn.execute("SELECT person_id FROM faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise PeopleError(f"no face with id {face_id}")
        return row[0]

    def counts(self) -> dict[str, int]:
        """For `vaultctl status`: faces; waiting (not yet seen by a pass); unassigned
        (seen, nobody's); people (with faces)."""
        with self._reading() as conn:
            clustered = self._meta_int("clustered", conn)
            row = conn.execute(
                "SELECT COUNT(*), SUM(seq > ?), SUM(seq <= ? AND person_id IS NULL) "
                "FROM faces WHERE model = ?",
                (clustered, clustered, self.model),
            ).fetchone()
            people = conn.execute(
                "SELECT COUNT(DISTINCT person_id) FROM faces WHERE person_id IS NOT NULL"
            ).fetchone()[0]
        return {
            "faces": row[0],
            "waiting": row[1] or 0,
            "unassigned": row[2] or 0,
            "people": people,
        }
