#!/usr/bin/env python3
"""Write the tiny ONNX test models (tagger- and CLIP-shaped) into a folder.

Tests build them on the fly from tests/fixtures/models/tiny_models.py; this
script writes the same files for trying the daemon by hand without real
weights. Needs the `onnx` package.

    python scripts/build_tiny_models.py /tmp/tiny-models
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location(
        "tiny_models", ROOT / "tests/fixtures/models/tiny_models.py"
    )
    assert spec and spec.loader
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    tiny.build_classifier(args.out_dir / "tagger.onnx")
    tiny.build_image_encoder(args.out_dir / "clip-image.onnx")
    tiny.build_text_encoder(args.out_dir / "clip-text.onnx")
    print(f"wrote tiny models to {args.out_dir}")


if __name__ == "__main__":
    main()
