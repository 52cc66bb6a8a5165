"""Run mermaid's own parser (tests/analyzer/mermaid/parse.mjs under node) on diagrams.

One node process parses a whole list, so each test module pays node's start-up
once. Missing node or mermaid FAILS the test: diagrams are part of the contract.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

MERMAID_DIR = Path(__file__).resolve().parent / "mermaid"


def run_mermaid_parser(texts: list[str]) -> list[dict[str, Any]]:
    """One result per text: {"ok": True, "type": ..., nodes/edges or actors/messages}
    or {"ok": False, "error": ...} (see parse.mjs)."""
    node_bin = shutil.which("node")
    if node_bin is None:
        pytest.fail(
            "node is not installed: the Mermaid checks need it (apt-get install nodejs npm)"
        )
    if not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        pytest.fail(
            f"mermaid is not installed: run `npm ci --prefix {MERMAID_DIR}` (make test does)"
        )
    done = subprocess.run(
        [node_bin, str(MERMAID_DIR / "parse.mjs")],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(texts)
    return results


def assert_all_parse(diagrams: dict[str, str]) -> list[dict[str, Any]]:
    results = run_mermaid_parser(list(diagrams.values()))
    for (name, text), result in zip(diagrams.items(), results, strict=True):
        assert result["ok"], f"{name} does not parse: {result.get('error')}\n{text}"
    return results
