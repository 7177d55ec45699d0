"""The public API is what cds.__all__ lists (docs/embedding.md): every name resolves, and `import cds` is cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cds
from tests.conftest import ROOT


def test_every_public_name_resolves() -> None:
    for name in cds.__all__:
        assert getattr(cds, name) is not None, name
    assert set(cds.__all__) <= set(dir(cds))
    with pytest.raises(AttributeError, match="no attribute 'pipeline_internals'"):
        cds.pipeline_internals  # noqa: B018


def test_importing_the_package_loads_neither_the_pipeline_nor_the_web_app() -> None:
    code = "import sys, cds; print(sorted(m for m in ('cds.pipeline', 'fastapi', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_package_is_typed() -> None:
    assert (ROOT / "cds" / "py.typed").is_file()
