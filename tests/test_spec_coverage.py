"""Every numbered statement of SPEC.md §8 (1–50) and §9.1–9.6 (1–22) has at
least one test that names it: ``test_s8_31_…``, ``test_s9_13_…``, several
``test_s8_20_21_22_…``, a range ``test_s8_6_to_9_…``, or a §9 statement with
its subsection ``test_s9_6_20_…`` (9.6, statement 20).  A statement whose test
is renamed or deleted fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).parent
NAMED = re.compile(r"(?:^|_)s(8|9)((?:_\d+)+)(?:_to_(\d+))?")
REQUIRED = {"8": range(1, 51), "9": range(1, 23)}
#: The statements of each subsection of §9 (9.1 holds 1–4, 9.2 holds 5–9, …).
SUBSECTIONS = {
    1: range(1, 5),
    2: range(5, 10),
    3: range(10, 12),
    4: range(12, 16),
    5: range(16, 20),
    6: range(20, 23),
}


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
        for section, run, last in NAMED.findall(name):
            numbers = [int(n) for n in run.strip("_").split("_")]
            if (
                section == "9"
                and len(numbers) >= 2
                and numbers[1] in SUBSECTIONS.get(numbers[0], ())
            ):
                numbers = numbers[1:]  # s9_<subsection>_<statement>
            if last:
                numbers += range(numbers[-1], int(last) + 1)
            found[section].update(numbers)
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
