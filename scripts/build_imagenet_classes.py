#!/usr/bin/env python3
"""Write daemon/photovault/models/data/imagenet_classes.tsv from timm's class lists.

Why: the tagger must name ImageNet-1k classes offline, with their WordNet ids,
and neither torchvision's metadata nor NLTK's WordNet can be fetched at run
time. timm (Apache-2.0) ships the 1000 synset ids in class order and their
WordNet lemmas as plain text; we copy just those two facts.

Usage (once, offline after the download):
    pip download timm --no-deps -d /tmp/timm
    unzip -o /tmp/timm/timm-*.whl 'timm/data/_info/*' -d /tmp/timm
    python scripts/build_imagenet_classes.py /tmp/timm/timm/data/_info
"""

from __future__ import annotations

import argparse
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "daemon/photovault/models/data/imagenet_classes.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("info_dir", type=Path, help="timm/data/_info folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    synsets = (args.info_dir / "imagenet_synsets.txt").read_text().split()
    assert len(synsets) == 1000, len(synsets)
    lemmas = {}
    for line in (args.info_dir / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        wnid, _, text = line.partition("\t")
        lemmas[wnid] = text.strip()
    lines = ["# index\twnid\tlabel\tlemmas (WordNet 3.0; ImageNet-1k class order)"]
    for index, wnid in enumerate(synsets):
        all_lemmas = lemmas[wnid]
        label = all_lemmas.split(",")[0].strip()
        lines.append(f"{index}\t{wnid}\t{label}\t{all_lemmas}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(synsets)} classes)")


if __name__ == "__main__":
    main()
