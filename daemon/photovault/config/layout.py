"""The state folder's layout: the one description of what lives where under
`state_dir`, used by the daemon, backup, restore and the people store."""

from __future__ import annotations

from pathlib import Path


class StateLayout:
    """What lives where under `state_dir`: the one description that the daemon,
    backup, restore and the people store use (names relative to the state dir)."""

    CATALOG = "catalog.sqlite3"  # file states, queue, results per content
    PEOPLE = "people.sqlite3"  # faces, people, names (the source of names)
    INDEX = "index"  # LanceDB search index (rebuilt from the catalog when lost)
    MODELS = "models"  # installed ONNX models with their manifests
    SIDECARS = "sidecars"  # mirror tree: sidecars of read-only shares, overlong names
    FACE_WEIGHTS = "deepface"  # face model weights ($DEEPFACE_HOME)
    TAGS = "tags.toml"  # the user's zero-shot tag vocabulary, when present

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def catalog(self) -> Path:
        return self.root / self.CATALOG

    @property
    def people(self) -> Path:
        return self.root / self.PEOPLE

    @property
    def index(self) -> Path:
        return self.root / self.INDEX

    @property
    def models(self) -> Path:
        return self.root / self.MODELS

    @property
    def sidecars(self) -> Path:
        return self.root / self.SIDECARS

    @property
    def face_weights(self) -> Path:
        return self.root / self.FACE_WEIGHTS
