"""Clustering passes over all faces of the people database (see people/store.py's
docstring for the rules): read a snapshot, cluster it, plan (people/plan.py),
write the plan in one transaction unless a person acted meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from photovault.people.cluster import CORE_NEIGHBOURS, Pace, as_matrix, density_labels
from photovault.people.db import PeopleDB
from photovault.people.plan import Plan, Snapshot, plan_pass

log = logging.getLogger(__name__)


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


class ClusterPasses(PeopleDB):
    """Full clustering passes of `PeopleStore`."""

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
