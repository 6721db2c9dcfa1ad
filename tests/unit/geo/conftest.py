from __future__ import annotations

import pytest

from photovault.geo.places import Geocoder, default_geocoder


@pytest.fixture(scope="session")
def geocoder() -> Geocoder:
    """The process's geocoder, loaded once for all the tests (about a second)."""
    g = default_geocoder()
    g.load()
    return g
