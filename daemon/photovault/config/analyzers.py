"""The analyzers' own tables: `[faces]` and `[text]` (and the languages text may
be read in). The analyzers themselves live in analyze/ and import these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaceSettings(BaseModel):
    """`[faces]` in vaultd.toml. Defaults are the offline path measured in bench/faces.py
    (the analyzer itself lives in analyze/faces.py)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "Dlib",
        description="recognition model: Dlib (offline) or a deepface model such as "
        "ArcFace, Facenet512, SFace (downloaded on first use)",
    )
    detector: str = Field(
        "dlib+mtcnn",
        description="face detector: dlib+mtcnn (HOG plus MTCNN's faces HOG misses: turned "
        "and small faces), dlib (HOG), mtcnn_onnx, dlib_cnn, opencv (all offline) or a "
        "deepface backend such as retinaface, yunet, mtcnn (downloaded on first use)",
    )
    engine: Literal["auto", "dlib", "deepface"] = Field(
        "auto",
        description="auto = call dlib directly for model Dlib with an offline detector, "
        "deepface otherwise",
    )
    image_side: int = Field(
        1024, ge=256, le=4096, description="long side (px) of the image faces are searched in"
    )
    upsample: int = Field(
        1,
        ge=0,
        le=2,
        description="dlib detectors: upsample the image this many times; 1 finds faces down "
        "to ~40 px at 3x the cost of 0 (~80 px)",
    )
    min_face_px: int = Field(
        40, ge=1, description="skip faces whose box is narrower than this in the working image"
    )
    min_score: float = Field(
        0.3,
        description="skip faces the detector scores below this (HOG: SVM margin, ~0..3; "
        "dlib_cnn: ~0..1.5; opencv: cascade level weight; deepface: confidence 0..1)",
    )
    max_faces: int = Field(
        500, ge=1, description="keep at most this many faces per photo (group photos: 50+)"
    )
    num_jitters: int = Field(
        1, ge=1, le=100, description="Dlib: average the embedding over this many jittered chips"
    )
    cluster_distance: float = Field(
        0.5,
        gt=0,
        description="two faces are neighbours when their embedding distance is at most this "
        "(Dlib: euclidean; deepface models: cosine)",
    )
    join_distance: float = Field(
        0.5,
        gt=0,
        description="a new face joins the nearest named person within this distance",
    )
    min_cluster_faces: int = Field(
        3, ge=2, description="faces a cluster needs before it becomes a person"
    )


#: Languages `[text] languages` accepts (ISO 639-1), by script. The `pp-ocrv6` model
#: reads all of them; `pp-ocrv6-tiny` all but Japanese and Romanian (its charset lacks
#: ș and ț); `pp-ocrv4` reads Latin letters without most accents and Chinese (the
#: analyzer refuses a language its installed model does not read). Vietnamese is not
#: offered: no installable model's charset holds its tone-marked vowels (ạ, ế, ữ ...).
_LATIN_LANGUAGES = (
    "en de fr es it pt nl sv da no nb fi is pl cs sk sl hr bs ro hu tr et lv lt ca "
    "eu gl ga cy mt sq id ms tl sw af la"
)
TEXT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "latin": tuple(_LATIN_LANGUAGES.split()),
    "greek": ("el",),
    "chinese": ("zh",),
    "japanese": ("ja",),
}


class TextSettings(BaseModel):
    """`[text]` in vaultd.toml: the OCR analyzer (analyze/text.py). Defaults are measured
    in bench/text.py on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str | None = Field(
        None,
        description="installed text model name (default: pp-ocrv6-tiny, else pp-ocrv6, "
        "else pp-ocrv4, the first installed that reads `languages`; "
        "`vaultctl models install text pp-ocrv6-tiny`)",
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="ISO 639-1 codes of the languages to read. pp-ocrv6 reads Latin-script "
        "languages (with accents), Greek (el), Chinese (zh) and Japanese (ja); pp-ocrv6-tiny "
        "the same but Japanese and Romanian; pp-ocrv4 English-like Latin text and Chinese",
    )
    image_side: int = Field(
        1024, ge=320, le=4096, description="long side (px) of the image text is read in"
    )
    gate_side: int | None = Field(
        None,
        ge=64,
        le=1024,
        description="the quick look that decides a photo holds no text sees it reduced to "
        "about gate_side x 4/3 gate_side pixels in area (a tall receipt keeps its print); "
        "unset: the model's (pp-ocrv6-tiny 416, the others 320)",
    )
    gate_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="the quick look counts text in regions of at least this detector score "
        "(a value above box_threshold is lowered to it: the quick look must not miss text the "
        "full pass reads)",
    )
    box_threshold: float = Field(
        0.5, ge=0, le=1, description="detector score a text region needs to be read"
    )
    min_score: float = Field(
        0.6, ge=0, le=1, description="keep a line whose mean character confidence is this"
    )
    document_share: float = Field(
        0.08,
        gt=0,
        le=1,
        description="a photo whose lines cover this share of it is a document "
        "(Documents|Text, |Receipt or |Screenshot)",
    )

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        known = sorted(code for codes in TEXT_LANGUAGES.values() for code in codes)
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(
                f"unknown language(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})"
            )
        if not value:
            raise ValueError("list at least one language")
        return value
