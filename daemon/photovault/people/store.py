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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photovault.people.cluster import (
    CORE_NEIGHBOURS,
    Metric,
    Pace,
    as_matrix,
    density_labels,
    distance_blocks,
    metric_for_model,
)
from photovault.people.plan import Plan, Snapshot, plan_pass
from photovault.people.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION
from photovault.versioning import StoreTooNewError, ensure_sqlite_version

log = logging.getLogger(__name__)

__all__ = ["DB_NAME", "SCHEMA_VERSION", "ClusterReport", "PeopleError", "PeopleStore"]


class PeopleError(Exception):
    """A people operation that cannot be done; the message is shown to the user."""


class PeopleVersionError(PeopleError, StoreTooNewError):
    """The database was written by a newer vaultd."""


@dataclass
class ClusterReport:
    """What one `cluster()` pass changed. `named_photos`: photos whose faces joined a
    person who has a name (their sidecars and index rows must show it)."""

    new_people: list[int] = field(default_factory=list)
    joined: int = 0  # faces without a person that joined one that existed
    moved: int = 0  # faces that went from one person to another
    merged: list[int] = field(default_factory=list)  # unnamed people emptied into others
    unassigned: int = 0  # faces nobody's after the pass (noise, rejected)
    faces: int = 0  # faces the pass looked at
    seconds: float = 0.0
    stale: bool = False  # a person acted during the pass: nothing written, run again
    named_photos: set[str] = field(default_factory=set)


def iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class PeopleStore:
    """All people state for one recognition model. Thread-safe (one lock)."""

    def __init__(
        self,
        path: Path,
        *,
        model: str = "Dlib",
        cluster_distance: float = 0.5,
        join_distance: float = 0.5,
        min_cluster_faces: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.metric: Metric = metric_for_model(model)
        self.cluster_distance = cluster_distance
        self.join_distance = join_distance
        self.min_cluster_faces = min_cluster_faces
        self._clock = clock
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        self._ensure_version()
        # Reads for status, show, `people list` use a connection of their own: in WAL
        # mode they see the last commit and never wait for a pass writing its result.
        self._reader = self._connect()
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def for_settings(cls, state_dir: Path, cfg: Any) -> PeopleStore:
        """Open `<state_dir>/people.sqlite3` with the thresholds of a FaceSettings."""
        return cls(
            Path(state_dir) / DB_NAME,
            model=cfg.model,
            cluster_distance=cfg.cluster_distance,
            join_distance=cfg.join_distance,
            min_cluster_faces=cfg.min_cluster_faces,
        )

    # ------------------------------------------------------------------ plumbing

    def _ensure_version(self) -> None:
        ensure_sqlite_version(
            self._conn, self.path, "people database", SCHEMA_VERSION, MIGRATIONS, PeopleVersionError
        )

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> PeopleStore._Tx:
        return PeopleStore._Tx(self._conn)

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            yield self._reader

    def _meta_int(self, key: str, conn: sqlite3.Connection | None = None) -> int:
        row = (conn or self._conn).execute("SELECT value FROM meta WHERE key = ?", (key,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def _bump(self, key: str) -> int:
        """Next value of a counter in `meta` (inside the caller's transaction)."""
        value = self._meta_int(key) + 1
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )
        return value

    def _params(self) -> str:
        """Settings a finished pass depends on; another value makes a pass pending."""
        return json.dumps(
            [self.model, self.cluster_distance, self.join_distance, self.min_cluster_faces]
        )

    def _person(self, person_id: int) -> sqlite3.Row:
        row = self._conn.execute("SELECT * FROM people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise PeopleError(f"no person with id {person_id}")
        return row

    def _embeddings(
        self, where: str, args: Iterable[Any] = ()
    ) -> tuple[list[int], list[Any], np.ndarray]:
        rows = self._conn.execute(
            f"SELECT id, person_id, embedding FROM faces WHERE model = ? AND {where} ORDER BY id",
            (self.model, *args),
        ).fetchall()
        ids = [r["id"] for r in rows]
        persons = [r["person_id"] for r in rows]
        vectors = [np.frombuffer(r["embedding"], dtype=np.float32) for r in rows]
        matrix = as_matrix(np.vstack(vectors) if vectors else np.zeros((0, 1)), self.metric)
        return ids, persons, matrix

    def _rejected(self) -> set[tuple[int, int]]:
        return {
            (r[0], r[1]) for r in self._conn.execute("SELECT face_id, person_id FROM rejections")
        }

    def _nearest_person(
        self,
        queries: np.ndarray,
        query_ids: list[int],
        candidates: np.ndarray,
        candidate_persons: list[int],
        rejected: set[tuple[int, int]],
    ) -> list[tuple[int | None, float]]:
        """Per query: (person of the nearest allowed candidate face, its distance)."""
        out: list[tuple[int | None, float]] = [(None, float("inf"))] * len(queries)
        if len(candidates) == 0 or len(queries) == 0:
            return out
        persons = np.asarray(candidate_persons)
        for start, dist in distance_blocks(queries, candidates, self.metric):
            for i, row in enumerate(dist):
                face_id = query_ids[start + i]
                best = int(np.argmin(row))
                if (face_id, int(persons[best])) not in rejected:
                    out[start + i] = (int(persons[best]), float(row[best]))
                    continue
                for j in np.argsort(row, kind="stable"):  # rare: the nearest was rejected
                    person = int(persons[j])
                    if (face_id, person) not in rejected:
                        out[start + i] = (person, float(row[j]))
                        break
        return out

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

    def _drop_empty_people(self, conn: sqlite3.Connection, lost: Iterable[int] = ()) -> int:
        """Delete unnamed people without faces, and the people in `lost` (their last
        photo was deleted) even when named: a name kept on nobody would only confuse."""
        n = conn.execute(
            "DELETE FROM people WHERE name IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM faces WHERE faces.person_id = people.id)"
        ).rowcount
        for person in lost:
            n += conn.execute(
                "DELETE FROM people WHERE id = ? AND NOT EXISTS "
                "(SELECT 1 FROM faces WHERE faces.person_id = people.id)",
                (person,),
            ).rowcount
        return n

    def photos(self) -> list[str]:
        """Every photo key (sha256) that has faces here."""
        with self._reading() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT photo FROM faces")]

    # ------------------------------------------------------------------ clustering

    def pending(self) -> bool:
        """Has anything changed since the last finished pass (faces, settings)?"""
        with self._reading() as conn:
            if self._meta_int("changes", conn) != self._meta_int("clustered", conn):
                return True
            row = conn.execute("SELECT value FROM meta WHERE key = 'cluster_params'")
            found = row.fetchone()
            has_faces = conn.execute("SELECT 1 FROM faces LIMIT 1").fetchone() is not None
            return has_faces and (found is None or found[0] != self._params())

    def _snapshot(self) -> Snapshot:
        """Everything a pass needs, read in one transaction on a connection of its own
        (WAL: writers go on meanwhile)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            changes = self._meta_int("changes", conn)
            user_ops = self._meta_int("user_ops", conn)
            rows = conn.execute(
                "SELECT f.id, f.person_id, f.assigned_by, f.seq, f.embedding FROM faces f "
                "WHERE f.model = ? ORDER BY f.id",
                (self.model,),
            ).fetchall()
            people = conn.execute("SELECT id FROM people WHERE name IS NOT NULL").fetchall()
            rejected = {
                (r[0], r[1]) for r in conn.execute("SELECT face_id, person_id FROM rejections")
            }
            conn.execute("COMMIT")
        finally:
            conn.close()
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        person = np.fromiter((-1 if r[1] is None else r[1] for r in rows), dtype=np.int64, count=n)
        user = np.fromiter((r[2] == "user" for r in rows), dtype=bool, count=n)
        seq = np.fromiter((r[3] for r in rows), dtype=np.int64, count=n)
        blob = b"".join(r[4] for r in rows)
        x = np.frombuffer(blob, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 1))
        return Snapshot(
            changes=changes,
            user_ops=user_ops,
            ids=ids,
            person=person,
            user=user,
            seq=seq,
            x=as_matrix(x, self.metric),
            named={r[0] for r in people},
            rejected=rejected,
        )

    def cluster(self, pace: Pace | None = None) -> ClusterReport:
        """One full pass; see the module docstring. `pace` is called between blocks of
        the distance scan (it may sleep, or raise to cancel: nothing is written then)."""
        started = time.monotonic()
        snap = self._snapshot()
        report = ClusterReport(faces=len(snap.ids))
        min_neighbours = min(CORE_NEIGHBOURS, self.min_cluster_faces)
        labels = density_labels(
            snap.x, self.cluster_distance, self.metric, min_neighbours, pace=pace
        )
        plan = plan_pass(
            snap,
            labels,
            metric=self.metric,
            min_cluster_faces=self.min_cluster_faces,
            join_distance=self.join_distance,
        )
        self._apply(snap, plan, report)
        report.seconds = time.monotonic() - started
        if report.stale:
            log.info("people pass discarded: a person changed people meanwhile; running again")
        else:
            log.info(
                "people pass over %d faces in %.1f s: %d new, %d joined, %d moved, "
                "%d merged away, %d unassigned",
                report.faces,
                report.seconds,
                len(report.new_people),
                report.joined,
                report.moved,
                len(report.merged),
                report.unassigned,
            )
        return report

    def _apply(self, snap: Snapshot, plan: Plan, report: ClusterReport) -> None:
        """Write a pass's result in one transaction, unless a person acted meanwhile."""
        with self._lock, self._tx() as conn:
            if self._meta_int("user_ops") != snap.user_ops:
                report.stale = True
                return
            existing = {r[0] for r in conn.execute("SELECT id FROM people")}
            wanted = {int(t) for t in plan.target if t >= 0}
            if not wanted <= existing:  # a deletion emptied one meanwhile: run again
                report.stale = True
                return
            fresh: list[int] = []
            for _ in range(plan.new_people):
                cur = conn.execute(
                    "INSERT INTO people (name, created_at) VALUES (NULL, ?)", (self._clock(),)
                )
                assert cur.lastrowid is not None
                fresh.append(int(cur.lastrowid))
            report.new_people = fresh

            def final(t: int) -> int | None:
                if t >= 0:
                    return t
                return None if t == -1 else fresh[-t - 2]

            created = set(fresh)
            updates = []
            for pos, how in plan.how.items():
                new, old = final(int(plan.target[pos])), int(snap.person[pos])
                updates.append(
                    (
                        new,
                        None if new is None else how,
                        int(snap.ids[pos]),
                        None if old < 0 else old,
                        int(snap.seq[pos]),
                    )
                )
                if new is not None and old < 0:
                    report.joined += new not in created
                elif new is not None:
                    report.moved += 1
            conn.executemany(
                "UPDATE faces SET person_id = ?, assigned_by = ? "
                "WHERE id = ? AND person_id IS ? AND seq = ?",
                updates,
            )
            for gone, successor in plan.emptied.items():
                if successor is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO rejections (face_id, person_id) "
                        "SELECT face_id, ? FROM rejections WHERE person_id = ?",
                        (successor, gone),
                    )
            report.merged = sorted(plan.emptied)
            self._drop_empty_people(conn)
            conn.execute("DELETE FROM suggestions")
            conn.executemany(
                "INSERT OR IGNORE INTO suggestions (a, b, distance, face_a, face_b) "
                "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM people WHERE id = ?) "
                "AND EXISTS (SELECT 1 FROM people WHERE id = ?)",
                [(a, b, d, fa, fb, a, b) for a, b, d, fa, fb in plan.suggestions],
            )
            named = {r[0] for r in conn.execute("SELECT id FROM people WHERE name IS NOT NULL")}
            to_named = [u[2] for u in updates if u[0] in named or u[3] in named]
            for lo in range(0, len(to_named), 500):
                chunk = to_named[lo : lo + 500]
                marks = ",".join("?" * len(chunk))
                report.named_photos.update(
                    r[0]
                    for r in conn.execute(f"SELECT photo FROM faces WHERE id IN ({marks})", chunk)
                )
            report.unassigned = int(np.count_nonzero(plan.target == -1))
            for key, value in (
                ("clustered", str(snap.changes)),
                ("cluster_params", self._params()),
            ):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def suggestions(self) -> list[dict[str, Any]]:
        """Likely merges found by the last pass, nearest first:
        [{"a", "b", "distance", "face_a", "face_b"}] (a and b are person ids)."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT s.a, s.b, s.distance, s.face_a, s.face_b FROM suggestions s "
                "WHERE EXISTS (SELECT 1 FROM faces WHERE person_id = s.a) "
                "AND EXISTS (SELECT 1 FROM faces WHERE person_id = s.b) ORDER BY s.distance"
            ).fetchall()
        return [dict(r) for r in rows]

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
