"""atheris entry point: ``python fuzz/harness.py TARGET [libFuzzer flags] [corpus]``."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["webims", "diameter"]):
    import targets


def main() -> None:
    name = sys.argv.pop(1)
    target = getattr(targets, name)
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
