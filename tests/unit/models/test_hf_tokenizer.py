"""The Hugging Face `tokenizers` path (models/hf_tokenizer.py) against our CLIP BPE.

A CLIP model from the hub brings CLIP's BPE as a tokenizer.json; its ids must
be the ones our built-in tokenizer (models/tokenizer.py, checked against
open_clip) gives, on a few hundred strings including accents, CJK, emoji,
HTML entities, digits, apostrophes and odd whitespace.

One known, intended difference: superscripts, fractions and Roman numerals
(Unicode No/Nl, e.g. "²", "½", "Ⅻ"). Our tokenizer groups them with letters
(`re` has no `\\p{N}`); the tokenizer.json path splits them as open_clip does.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from photovault.models.hf_tokenizer import HFTokenizer, clean, describe, read_json
from photovault.models.tokenizer import Tokenizer, default_tokenizer

pytest.importorskip("tokenizers")

WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "cat",
    "dog's",
    "it's",
    "we're",
    "they'll",
    "I'd",
    "you've",
    "Café",
    "naïve",
    "résumé",
    "Straße",
    "São",
    "Paulo",
    "crème",
    "brûlée",
    "Ελλάδα",
    "ΟΔΟΣ",
    "Москва",
    "日本の寺",
    "北京",
    "서울",
    "ภาษาไทย",
    "हिन्दी",
    "العربية",
    "עברית",
    "🎉",
    "🐱",
    "👨‍👩‍👧",
    "🇩🇪",
    "&amp;",
    "&lt;b&gt;",
    "&quot;hi&quot;",
    "3.14159",
    "2024-06-01",
    "10:30",
    "#tag",
    "@user",
    "e-mail",
    "under_score",
    "C++",
    "$100",
    "50%",
    "...",
    "!!!",
    "(x)",
    "[y]",
    "{z}",
    "a/b",
    "İstanbul",
    "ǅemal",
    "ﬁsh",
    "Ｆｕｌｌ",
    "ＡＢＣ",
    "½",
    "x²",
]
NUMERALS = set("²³¹½¼¾ⅫⅣ")  # Unicode No/Nl: the one documented difference
SPACES = [" ", "  ", "\t", "\n", " \u00a0 ", "\u3000"]


def sample_strings(count: int = 400, seed: int = 20) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 12))]
        text = "".join(w + rng.choice(SPACES) for w in words)
        if rng.random() < 0.3:
            text = text.upper()
        out.append(text)
    return out


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> HFTokenizer:
    from helpers.hub_models import clip_tokenizer_json

    folder = tmp_path_factory.mktemp("clip-tokenizer")
    path = clip_tokenizer_json(folder)
    facts = describe(path, "clip", read_json(folder / "textual/tokenizer_config.json"))
    return HFTokenizer(path, 77, facts["pad_id"], "clip")


@pytest.fixture(scope="module")
def ours() -> Tokenizer:
    return default_tokenizer()


def test_clip_bpe_from_tokenizer_json_gives_our_ids_on_400_strings(
    hf: HFTokenizer, ours: Tokenizer
) -> None:
    texts = [t for t in sample_strings() if not NUMERALS & set(t)]
    assert len(texts) > 300
    differ = [t for t in texts if hf.encode(t) != ours.encode(t)]
    assert differ == []
    np.testing.assert_array_equal(hf(texts), ours(texts))


def test_padded_batches_match_ours_including_truncation_and_the_end_token(
    hf: HFTokenizer, ours: Tokenizer
) -> None:
    texts = ["a photo of a cat", "long " * 200, "", "  "]
    ids = hf(texts)
    np.testing.assert_array_equal(ids, ours(texts))
    assert ids[1, -1] == 49407 and ids[0, 0] == 49406
    assert not ids[0, 7:].any()  # CLIP pads with 0, as open_clip does


def test_superscripts_and_fractions_follow_open_clip_not_our_regex(
    hf: HFTokenizer, ours: Tokenizer
) -> None:
    open_clip = pytest.importorskip("open_clip")
    reference = open_clip.get_tokenizer("ViT-B-32")
    for text in ["x² + y²", "½ cup", "Louis XIV Ⅻ"]:
        assert hf.encode(text) == reference.encode(text)
    assert hf.encode("x²") != ours.encode("x²")


def test_siglip_cleaning_removes_punctuation_and_case() -> None:
    assert clean("  Hello,   World!  ", "canonicalize") == "hello world"
    assert clean("  Hello,   World!  ", "whitespace") == "Hello, World!"
    assert clean("&amp; Café", "clip") == "& café"


def test_siglip_cleaning_is_open_clips_canonicalize_on_hundreds_of_strings() -> None:
    # open_clip's own cleaning for SigLIP: canonicalize_text(basic_clean(text)). Strings
    # that ftfy itself would change (full-width letters, ligatures such as "Ǆ") are left
    # out: vaultd does not carry ftfy, the same documented gap as for CLIP's cleaning.
    import unicodedata

    ftfy = pytest.importorskip("ftfy")
    tokenizer = pytest.importorskip("open_clip.tokenizer")
    reference = tokenizer.get_clean_fn("canonicalize")

    def ftfy_neutral(text: str) -> bool:
        plain = text.replace("&", "+")  # entities: both sides unescape them
        return bool(ftfy.fix_text(plain) == unicodedata.normalize("NFC", plain))

    texts = [t for t in sample_strings(1200, seed=21) if ftfy_neutral(t)]
    texts += ["snake_case_name", "a - b", "  x , y  ", "__init__", "A_B-C.D", "&amp;_x"]
    assert len(texts) > 300
    assert sum("_" in t for t in texts) > 20 and sum("&" in t for t in texts) > 20
    differ = [(t, clean(t, "canonicalize"), reference(t)) for t in texts]
    assert [d for d in differ if d[1] != d[2]] == []
    assert clean("snake_case - name", "canonicalize") == "snake case name"


def test_a_file_that_is_not_a_tokenizer_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer\.json: not a tokenizer\.json"):
        describe(bad, "clip")
