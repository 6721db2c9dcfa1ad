"""Which files an export copies, and the copying itself (never over an existing file).

Originals are only opened for reading; sidecars and other files that are not
photos or videos are skipped, not copied (see `ops.export`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from photovault.media.formats import is_supported
from photovault.ops.export_report import ExportError, ExportReport

NOT_A_PHOTO = "not a photo or video (sidecars and other files are not copied)"

# Folders that hold NAS thumbnails or OS metadata, never the user's photos.
_SYSTEM_DIRS = frozenset({"@eaDir", "#recycle", "$RECYCLE.BIN", "lost+found"})


def plan_copies(sources: list[Path], dest: Path, report: ExportReport) -> list[tuple[Path, Path]]:
    """(source file, wanted copy path) for every photo; the rest goes to `report`."""
    dest_real = dest.resolve()
    missing = [s for s in sources if not os.path.lexists(s)]
    if missing:
        raise ExportError("no such file or folder: " + ", ".join(str(s) for s in missing))
    plan: list[tuple[Path, Path]] = []
    for src in sources:
        if src.is_dir():
            src_real = src.resolve()
            if dest_real == src_real or src_real in dest_real.parents:
                raise ExportError(
                    f"{dest}: the export destination lies inside the source folder {src}; "
                    "choose a folder outside it"
                )
            base = dest / (src_real.name or "photos")
            plan.extend(_walk(src, base, report))
        elif src.is_file():
            if "\n" in src.name:
                report.failed.append((src, "the file name contains a line break"))
            elif is_supported(src):
                plan.append((src, dest / src.name))
            else:
                report.skipped.append((src, NOT_A_PHOTO))
        else:
            report.skipped.append((src, "not a regular file"))
    return plan


def _walk(root: Path, base: Path, report: ExportReport) -> Iterable[tuple[Path, Path]]:
    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        report.failed.append((where, f"cannot read folder: {exc.strerror or exc}"))

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        here = Path(folder)
        for name in sorted(dirs):
            if name.startswith(".") or name in _SYSTEM_DIRS:
                dirs.remove(name)
                report.skipped.append((here / name, "hidden or system folder"))
        dirs.sort()
        rel = here.relative_to(root)
        for name in sorted(files):
            path = here / name
            if name.startswith("."):
                report.skipped.append((path, "hidden file (for example a macOS ._ fork)"))
            elif not is_supported(name):
                report.skipped.append((path, NOT_A_PHOTO))
            elif "\n" in name:
                report.failed.append((path, "the file name contains a line break"))
            else:
                yield path, base / rel / name


def copy_exclusive(source: Path, target: Path) -> Path:
    """Copy `source` to `target`, or to `stem (n).ext` when that exists; returns the path.

    O_EXCL makes "does it exist" and "create it" one step, so no existing file
    is ever replaced. A partial copy is removed on error.
    """
    with open(source, "rb") as src:
        st = os.fstat(src.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        for n in range(10_000):
            candidate = target.with_name(f"{target.stem} ({n}){target.suffix}") if n else target
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.utime(candidate, ns=(st.st_atime_ns, st.st_mtime_ns))
            except BaseException:
                candidate.unlink(missing_ok=True)
                raise
            return candidate
    raise FileExistsError(0, "no free name left", str(target))


def remove_copy(copy: Path) -> None:
    """Delete a copy that is not known to be clean, and exiftool's half-written file."""
    copy.unlink(missing_ok=True)
    copy.with_name(copy.name + "_exiftool_tmp").unlink(missing_ok=True)
