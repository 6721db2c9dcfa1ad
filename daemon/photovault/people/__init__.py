"""People stage: faces from the `faces` analyzer grouped into named persons.

`store.PeopleStore` keeps people (SQLite, stable ids), `cluster` holds the
distance and clustering maths, `sheet` renders contact sheets of face crops.
"""

from __future__ import annotations

from photovault.people.sheet import crop_face, render_face_sheet
from photovault.people.store import ClusterReport, PeopleError, PeopleStore

__all__ = ["ClusterReport", "PeopleError", "PeopleStore", "crop_face", "render_face_sheet"]
