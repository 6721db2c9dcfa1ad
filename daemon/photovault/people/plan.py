"""A clustering pass's decisions: clusters -> a person per face, and merges to suggest.

Pure computation on a snapshot of the people database (no SQL, no lock): the
store reads the snapshot, runs the clustering, calls `plan_pass` and writes the
plan in one transaction (people/store.py says how the rules honour what people
did: names, merges, rejections).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from photovault.people.cluster import Metric, nearest_rows, pairs_within

#: Faces of one named person compared with everyone else when looking for merges.
SUGGEST_FACES_PER_PERSON = 64
#: Likely merges are pairs whose nearest faces lie within join_distance times this
#: (Dlib: 0.6, the verification threshold dlib's authors give).
SUGGEST_FACTOR = 1.2


@dataclass
class Snapshot:
    """What a pass reads, in one transaction: faces of the model with their people."""

    changes: int
    user_ops: int
    ids: np.ndarray
    person: np.ndarray  # -1: nobody
    user: np.ndarray  # assigned by a person (assign, merge)
    seq: np.ndarray
    x: np.ndarray
    named: set[int]
    rejected: set[tuple[int, int]]


@dataclass
class Plan:
    """What a pass will write: a person per face and the merges to suggest."""

    target: np.ndarray  # person per face, -1 nobody; -(k+2) for the k-th new person
    how: dict[int, str]  # face position -> assigned_by, for faces that change
    new_people: int
    emptied: dict[int, int | None]  # unnamed person merged away -> where most faces went
    suggestions: list[tuple[int, int, float, int, int]]


def plan_pass(
    snap: Snapshot,
    labels: np.ndarray,
    *,
    metric: Metric,
    min_cluster_faces: int,
    join_distance: float,
) -> Plan:
    """Clusters -> person per face, honouring what people did (module docstring)."""
    person, ids = snap.person, snap.ids
    named = np.fromiter((p in snap.named for p in person), dtype=bool, count=len(person))
    pinned = (person >= 0) & (named | snap.user)
    target = np.where(pinned, person, -1)
    how: dict[int, str] = {}
    suggestions: dict[tuple[int, int], tuple[float, int, int]] = {}
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(sorted_labels.max(initial=-1) + 1))
    ends = np.searchsorted(sorted_labels, np.arange(sorted_labels.max(initial=-1) + 1), "right")
    free_clusters: list[np.ndarray] = []
    for lo, hi in zip(starts, ends, strict=True):
        members = order[lo:hi]
        anchors = members[pinned[members]]
        free = members[~pinned[members]]
        if len(anchors) == 0:
            free_clusters.append(members)
            continue
        owners = person[anchors]
        if len(np.unique(owners)) == 1:
            target[free] = owners[0]
        else:
            if len(free):
                nearest, _ = nearest_rows(snap.x[free], snap.x[anchors], metric)
                target[free] = owners[nearest]
            _shared_cluster(metric, snap, anchors, owners, suggestions)
        for pos in free:
            how[int(pos)] = "join"
    # Unanchored clusters keep the id of the unnamed person most of their faces had.
    overlap: Counter[tuple[int, int]] = Counter()
    for k, members in enumerate(free_clusters):
        for p in person[members]:
            if p >= 0:
                overlap[(k, int(p))] += 1
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for (k, p), _count in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0])):
        if k not in matched and p not in taken:
            matched[k] = p
            taken.add(p)
    new_people = 0
    for k, members in enumerate(free_clusters):
        if k in matched:
            target[members] = matched[k]
        elif len(members) >= min_cluster_faces:
            target[members] = -(new_people + 2)
            new_people += 1
        else:
            continue
        for pos in members:
            how[int(pos)] = "cluster"
    # Unnamed people left without faces are merged away; their rejections follow
    # their faces to where most of them went.
    gone = np.setdiff1d(np.unique(person[person >= 0]), target[target >= 0])
    emptied: dict[int, int | None] = {int(p): None for p in gone if p not in snap.named}
    moved = np.isin(person, gone) & (target >= 0)
    went = Counter(zip(person[moved].tolist(), target[moved].tolist(), strict=True))
    for (p, t), _count in sorted(went.items(), key=lambda kv: -kv[1]):
        if p in emptied and emptied[p] is None:
            emptied[p] = t
    rejected = set(snap.rejected)
    for face_id, p in snap.rejected:
        successor = emptied.get(p)
        if successor is not None:
            rejected.add((face_id, successor))
    if rejected:
        for pos in np.flatnonzero((target >= 0) & ~pinned):
            if (int(ids[pos]), int(target[pos])) in rejected:
                target[pos] = -1
    changed = [pos for pos in how if target[pos] != person[pos]]
    how = {pos: how[pos] for pos in changed}
    for pos in np.flatnonzero((target == -1) & (person >= 0) & ~pinned):
        how[int(pos)] = "noise"  # left its person: nobody's now
    _named_neighbours(metric, join_distance, snap, target, suggestions)
    return Plan(
        target=target,
        how=how,
        new_people=new_people,
        emptied=emptied,
        suggestions=[(a, b, *v) for (a, b), v in sorted(suggestions.items())],
    )


def _shared_cluster(
    metric: Metric,
    snap: Snapshot,
    anchors: np.ndarray,
    owners: np.ndarray,
    out: dict[tuple[int, int], tuple[float, int, int]],
) -> None:
    """People placed by a person share one cluster: suggest each pair, by its
    nearest faces."""
    people = np.unique(owners)
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            fa, fb = anchors[owners == a], anchors[owners == b]
            idx, dist = nearest_rows(snap.x[fa], snap.x[fb], metric)
            best = int(np.argmin(dist))
            _suggest(
                out,
                int(a),
                int(b),
                float(dist[best]),
                int(snap.ids[fa[best]]),
                int(snap.ids[fb[idx[best]]]),
            )


def _suggest(
    out: dict[tuple[int, int], tuple[float, int, int]],
    a: int,
    b: int,
    dist: float,
    face_a: int,
    face_b: int,
) -> None:
    if a > b:
        a, b, face_a, face_b = b, a, face_b, face_a
    old = out.get((a, b))
    if old is None or dist < old[0]:
        out[(a, b)] = (dist, face_a, face_b)


def _named_neighbours(
    metric: Metric,
    join_distance: float,
    snap: Snapshot,
    target: np.ndarray,
    out: dict[tuple[int, int], tuple[float, int, int]],
) -> None:
    """Named people whose faces come within SUGGEST_FACTOR x join_distance of another
    person's: likely the same person, for a person to confirm (never merged here).
    Up to SUGGEST_FACES_PER_PERSON faces of each named person are compared with all
    faces that have a person, so the cost stays ~(named people x 64 x faces)."""
    others = np.flatnonzero(target >= 0)
    reps = []
    for p in sorted(snap.named):
        own = np.flatnonzero(target == p)
        if len(own) > SUGGEST_FACES_PER_PERSON:
            own = own[np.linspace(0, len(own) - 1, SUGGEST_FACES_PER_PERSON).astype(int)]
        reps.append(own)
    if not reps or len(others) == 0:
        return
    rep = np.concatenate(reps)
    rows, cols, dist = pairs_within(
        snap.x[rep], snap.x[others], join_distance * SUGGEST_FACTOR, metric
    )
    a, b = target[rep[rows]], target[others[cols]]
    keep = a != b
    if not keep.any():
        return
    a, b, dist = a[keep], b[keep], dist[keep]
    fa, fb = snap.ids[rep[rows[keep]]], snap.ids[others[cols[keep]]]
    order = np.lexsort((dist, b, a))  # nearest pair first within each (a, b)
    seen: set[tuple[int, int]] = set()
    for i in order:
        key = (int(a[i]), int(b[i]))
        if key not in seen:
            seen.add(key)
            _suggest(out, key[0], key[1], float(dist[i]), int(fa[i]), int(fb[i]))
