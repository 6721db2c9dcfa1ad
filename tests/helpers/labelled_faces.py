"""The labelled real face photos (tests/fixtures/faces/labelled) and how to score people on them.

`faces.csv` names the person at each face centre (x, y as fractions of the
image). A detected face is that person when the centre lies in its box;
a face nobody labelled (a passer-by) counts as a person of its own, so
putting it into someone's cluster costs precision.
"""

from __future__ import annotations

import csv
from pathlib import Path

LABELLED = Path(__file__).resolve().parents[1] / "fixtures" / "faces" / "labelled"

#: Issue 16's bar for people right after an ingest.
MIN_PRECISION = 0.95
MIN_RECALL = 0.85


def labels() -> dict[str, list[tuple[str, float, float]]]:
    """file name -> [(person, x, y)] of its labelled faces."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    with open(LABELLED / "faces.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["file"], []).append(
                (row["person"], float(row["x"]), float(row["y"]))
            )
    return out


def photos() -> list[Path]:
    return sorted(LABELLED.glob("*.jpg"))


def identity(file: str, box: list[float], known: dict[str, list[tuple[str, float, float]]]) -> str:
    """Who the face with this box in `file` is, by the labelled face centres."""
    x, y, w, h = box
    for person, cx, cy in known.get(file, []):
        if x <= cx <= x + w and y <= cy <= y + h:
            return person
    return f"unlabelled:{file}:{x:.3f},{y:.3f}"


def people_of(vault, files: list[Path]) -> tuple[list[str], list[int], list[tuple[str, tuple]]]:
    """(true identity, person id or -1, (file, box) key) per face vaultd shows for `files`."""
    known = labels()
    truth, predicted, keys = [], [], []
    for path in files:
        for f in vault.show(path)["faces"]:
            truth.append(identity(path.name, f["box"], known))
            predicted.append(-1 if f["person_id"] is None else f["person_id"])
            keys.append((path.name, tuple(round(v, 4) for v in f["box"])))
    return truth, predicted, keys


def wait_people_complete(vault, expect_done: int, timeout: float = 300.0) -> dict:
    """Until the queue is empty, `expect_done` photos are done and clustering is idle:
    the moment issue 16 says people must be complete. Returns that status."""
    seen: dict = {}

    def complete() -> bool:
        st = vault.status()
        seen["st"] = st
        done = sum(s["counts"]["done"] for s in st["shares"])
        return (
            not st["queue_depth"]
            and not st["settling"]
            and not st["scanning"]
            and done == expect_done
            and st["people"]["clustering"] == "idle"
        )

    vault.wait_for(complete, timeout, f"{expect_done} photos done and clustering idle")
    return seen["st"]
