"""docs/embedding.md runs as written: each python block, run from the repository root in a process of its own,
prints exactly the text block that follows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "embedding.md"
EXAMPLE = re.compile(r"```python\n(.*?)```\n\n```text\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    assert found, f"no python block followed by its output in {DOC}"
    return found


@pytest.mark.parametrize(
    ("code", "output"), [pytest.param(*pair, id=f"example-{i}") for i, pair in enumerate(examples(), 1)]
)
def test_the_example_prints_what_the_doc_shows(code: str, output: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMATINIB_CDS_", "PROMETHEUS_"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output


def test_every_python_block_has_its_output() -> None:
    assert DOC.read_text(encoding="utf-8").count("```python") == len(examples())
