"""vaultd's pyarrow without pandas: 22-36 MiB less for the daemon's whole life.

pyarrow imports pandas, when it is installed, the first time it converts a
Python value, and importing `pyarrow.dataset` (lancedb does) is enough. vaultd
never builds a DataFrame; pandas is on the box only as deepface's dependency.
Importing pyarrow.dataset once with pandas refused makes pyarrow record "no
pandas" for good (it asks only once), while a later `import pandas` (deepface's
face engine) still works. Measured in bench/README.md ("Memory at rest").
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _RefusePandas(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] == "pandas":
            raise ImportError("pandas is not loaded by vaultd's pyarrow (photovault._nopandas)")
        return None


def load_pyarrow_without_pandas() -> None:
    """Import pyarrow.dataset with pandas refused, unless pandas is already loaded."""
    if "pandas" in sys.modules or "pyarrow.dataset" in sys.modules:
        return
    refuse = _RefusePandas()
    sys.meta_path.insert(0, refuse)
    try:
        import pyarrow.dataset  # noqa: F401
    finally:
        sys.meta_path.remove(refuse)
