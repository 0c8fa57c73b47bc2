"""The browser app as files: its build, its module graph, its OAuth and call modules.

No server here: what the page does in a browser is tests/wic/test_browser.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from webims.wic import INDEX_HTML, STATIC_DIR

from .conftest import ROOT, WIC_DIR, need_tool


@pytest.mark.parametrize(("tests", "at_least"), [("oauth.test.mjs", 9), ("call.test.mjs", 3)])
def test_the_modules_unit_tests_pass_on_node(tests: str, at_least: int) -> None:
    node = need_tool("node")
    out = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(Path(__file__).with_name(tests))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    passed = re.search(r"pass (\d+)", out.stdout)
    assert passed is not None and int(passed.group(1)) >= at_least, out.stdout


def test_the_bundle_is_jssip_at_the_pinned_version(wic_build: Path) -> None:
    lock = json.loads((WIC_DIR / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/jssip"]["version"]
    assert pinned == json.loads((WIC_DIR / "package.json").read_text())["dependencies"]["jssip"]
    probe = (
        "import('./static/build/jssip.js').then(m => console.log(JSON.stringify("
        "{version: m.default.version, ua: typeof m.default.UA,"
        " ws: typeof m.default.WebSocketInterface})))"
    )
    out = subprocess.run(
        [need_tool("node"), "-e", probe],
        cwd=WIC_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == {"version": pinned, "ua": "function", "ws": "function"}


def test_every_file_the_page_loads_exists(wic_build: Path) -> None:
    html = INDEX_HTML.read_text()
    refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert "/static/app.js" in refs and "/static/style.css" in refs
    seen: set[Path] = set()
    todo = [STATIC_DIR / r.removeprefix("/static/") for r in refs]
    while todo:
        path = todo.pop()
        assert path.is_file(), f"{path.relative_to(STATIC_DIR)} is referenced but missing"
        if path in seen or path.suffix != ".js" or "build" in path.parts:
            seen.add(path)
            continue
        seen.add(path)
        # ES module imports, static and dynamic, are relative to the module.
        for spec in re.findall(r'(?:from|import\()\s*"(\./[^"]+)"', path.read_text()):
            todo.append((path.parent / spec).resolve())
    names = {p.relative_to(STATIC_DIR).as_posix() for p in seen}
    assert {"app.js", "oauth.js", "sip.js", "build/jssip.js"} <= names


def test_nothing_third_party_or_built_is_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "src/webims/wic"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [t for t in tracked if "node_modules/" in t or "/static/build/" in t]
    ignored = subprocess.run(
        ["git", "check-ignore", "src/webims/wic/node_modules/x", "src/webims/wic/static/build/x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert len(ignored) == 2
