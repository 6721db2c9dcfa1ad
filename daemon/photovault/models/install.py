"""`vaultctl models install KIND NAME`: build a model from pip-installed weights.

Installing runs an exporter (torch, install time only) into a temporary
folder and imports the result through the same validation as a manual
`vaultctl models import`, so an install can never leave an unchecked model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from photovault.models.store import Manifest, ModelError

log = logging.getLogger(__name__)

# kind -> names that `install` knows how to build offline.
INSTALLABLE: dict[str, tuple[str, ...]] = {"tagger": ("efficientnet-lite0",)}


def install(
    store_dir: Path, kind: str, name: str, options: dict[str, Any] | None = None
) -> Manifest:
    """Export and install a known model; raises ModelError with the reason.

    options: {"replace": bool} — reinstall over an installed model.
    """
    options = dict(options or {})
    replace = bool(options.pop("replace", False))
    if options:
        raise ModelError(f"unknown install option(s): {', '.join(sorted(options))}")
    known = INSTALLABLE.get(kind)
    if known is None:
        raise ModelError(
            f"cannot install {kind} models (installable: "
            + ", ".join(f"{k} {n}" for k, names in INSTALLABLE.items() for n in names)
            + "); use `vaultctl models import` for a prepared folder"
        )
    if name not in known:
        raise ModelError(f"unknown {kind} model {name!r} (installable: {', '.join(known)})")
    log.info("exporting %s model %s (this takes a minute)", kind, name)
    from photovault.models import export_tagger

    return export_tagger.install(Path(store_dir), replace=replace)
