#!/usr/bin/env python3
"""Write random-weight GPT-SoVITS v2 checkpoints in the exact official formats (a thin launcher of export/testing.py).

    .venv/bin/python scripts/make_test_checkpoints.py --size tiny --out work/tiny
    .venv/bin/python scripts/make_test_checkpoints.py --size full --out work/full   # ~155 MB + ~85 MB, for benchmarks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from export.testing import write_test_set  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for kind, path in write_test_set(args.out, args.size, args.seed).items():
        print(f"{kind}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
