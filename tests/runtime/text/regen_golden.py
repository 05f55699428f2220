"""Regenerate the golden files from their sentences: `python -m tests.runtime.text.regen_golden [LANG ...]`.

Each golden file holds `text<TAB>symbols` lines. Review every changed line before committing: the expected
sequences were checked against the official GPT-SoVITS rules (see docs/frontend.md, "How the goldens were checked").
"""

from __future__ import annotations

import sys
from pathlib import Path

from runtime.text.frontend import TextFrontend

GOLDEN_DIR = Path(__file__).with_name("golden")


def read_golden(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        text, _, symbols = line.partition("\t")
        rows.append((text, symbols))
    return rows


def regenerate(lang: str, frontend: TextFrontend) -> None:
    path = GOLDEN_DIR / f"{lang}.tsv"
    header = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    rows = [f"{text}\t{' '.join(frontend.phonemize(text, lang).symbols)}" for text, _ in read_golden(path)]
    path.write_text("\n".join(header + rows) + "\n", encoding="utf-8")


def main(langs: list[str]) -> None:
    frontend = TextFrontend()
    for lang in langs or [p.stem for p in sorted(GOLDEN_DIR.glob("*.tsv"))]:
        regenerate(lang, frontend)


if __name__ == "__main__":
    main(sys.argv[1:])
