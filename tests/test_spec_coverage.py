"""Every numbered statement of SPEC.md §8 (1–50) and §9.1–9.6 (1–22) has at
least one test that names it: ``test_s8_31_…``, ``test_s9_13_…``, or a range
``test_s8_6_to_9_…``.  A statement whose test is renamed or deleted fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).parent
NAMED = re.compile(r"s(8|9)_(\d+)(?:_to_(\d+))?")
REQUIRED = {"8": range(1, 51), "9": range(1, 23)}


def _test_names() -> list[str]:
    names = []
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                names.append(node.name)
    return names


def covered() -> dict[str, set[int]]:
    found: dict[str, set[int]] = {"8": set(), "9": set()}
    for name in _test_names():
        for section, first, last in NAMED.findall(name):
            found[section].update(range(int(first), int(last or first) + 1))
    return found


def test_every_numbered_statement_has_a_test() -> None:
    found = covered()
    missing = {
        f"§{section} statement {n}"
        for section, numbers in REQUIRED.items()
        for n in numbers
        if n not in found[section]
    }
    assert not missing, "statements without a test: " + ", ".join(sorted(missing))
