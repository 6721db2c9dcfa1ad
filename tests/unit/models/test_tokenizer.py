from __future__ import annotations

import numpy as np
import pytest

from photovault.models.tokenizer import CONTEXT_LENGTH, VOCAB_SIZE, Tokenizer, default_tokenizer

# Ids produced by open_clip 3.3.0's SimpleTokenizer.encode for the same texts.
REFERENCE = {
    "a photo of a cat": [320, 1125, 539, 320, 2368],
    "Café au lait & croissants": [15304, 2566, 572, 585, 261, 1192, 49358, 590],
    "it's a bird's nest": [585, 568, 320, 3329, 568, 8719],
    "日本の寺": [39121, 44353, 21575, 161, 107, 374],
    "emoji 🎉🐱": [16327, 4310, 22979],
    "&amp; under_score 3.14": [261, 1798, 318, 4431, 274, 269, 272, 275],
}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return default_tokenizer()


@pytest.mark.parametrize("text", sorted(REFERENCE))
def test_token_ids_match_the_open_clip_reference(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.encode(text) == REFERENCE[text]


def test_a_batch_is_int64_with_start_end_and_zero_padding(tokenizer: Tokenizer) -> None:
    ids = tokenizer(["a photo of a cat", "dog"])
    assert ids.shape == (2, CONTEXT_LENGTH)
    assert ids.dtype == np.int64
    assert list(ids[0, :7]) == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert not ids[0, 7:].any()


def test_a_long_text_is_cut_and_still_ends_with_the_end_token(tokenizer: Tokenizer) -> None:
    ids = tokenizer("long " * 200)
    assert ids.shape == (1, CONTEXT_LENGTH)
    assert ids[0, -1] == 49407


def test_case_and_extra_whitespace_do_not_change_the_ids(tokenizer: Tokenizer) -> None:
    assert tokenizer.encode("  A   PHOTO of a\tCat ") == tokenizer.encode("a photo of a cat")


def test_every_id_fits_the_text_towers_vocabulary(tokenizer: Tokenizer) -> None:
    ids = tokenizer(["naïve résumé 🎉", "3.14159 ~~~ <html>"])
    assert int(ids.max()) < VOCAB_SIZE
