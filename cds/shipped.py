"""The default rule pack: where it is, and how to copy it for local edits.

A wheel carries the repository's ``rules/`` inside the package as ``cds/rulepack`` (pyproject.toml maps it), found
with importlib.resources. A git checkout (an editable install) reads ``rules/`` itself, the folder pharmacists
edit. ``IMATINIB_CDS_RULES`` (or ``--rules DIR``) names a local copy instead; ``imatinib-cds rules export DIR``
makes one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from cds.errors import CdsError

RULES_ENV = "IMATINIB_CDS_RULES"
PACKAGED = "rulepack"  # cds/rulepack in the wheel


class ExportError(CdsError):
    code = "export"


def checkout_root() -> Path | None:
    """The repository root when the package runs from a git checkout (``rules/`` beside ``cds/``), else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "rules" / "facts.yaml").is_file():
        return root
    return None


def shipped_rules() -> Path:
    """The rule pack that came with the package: the checkout's ``rules/``, or the wheel's ``cds/rulepack``."""
    root = checkout_root()
    if root is not None:
        return root / "rules"
    return _as_path(resources.files("cds").joinpath(PACKAGED))


def default_rules(env: Mapping[str, str] | None = None) -> Path:
    """What a command reads when it is given no rules folder: ``IMATINIB_CDS_RULES`` if set, else the shipped."""
    env = os.environ if env is None else env
    return Path(env[RULES_ENV]) if env.get(RULES_ENV) else shipped_rules()


def export_rules(dest: Path, *, force: bool = False) -> list[Path]:
    """Copy the shipped rule pack into ``dest`` (created if needed); the files written. A folder that holds
    anything is refused unless ``force``, and then only the pack's own files are overwritten."""
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest}: not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise ExportError(f"{dest}: the folder is not empty; use --force to overwrite the rule pack's files in it")
    try:
        return _copy_tree(shipped_rules(), dest)
    except OSError as exc:
        raise ExportError(f"{dest}: cannot write the rule pack: {exc.strerror or exc}") from exc


def _copy_tree(source: Traversable, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for item in sorted(source.iterdir(), key=lambda t: t.name):
        if item.name == "__pycache__":
            continue
        target = dest / item.name
        if item.is_dir():
            written += _copy_tree(item, target)
        else:
            target.write_bytes(item.read_bytes())
            written.append(target)
    return written


_EXTRACTED: list[Path] = []


def _as_path(pack: Traversable) -> Path:
    """A folder on disk: pip installs the pack as files; from a zip import it is extracted once per process."""
    if isinstance(pack, Path):
        return pack
    if not _EXTRACTED:
        folder = Path(tempfile.mkdtemp(prefix="imatinib-cds-rules-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _copy_tree(pack, folder / PACKAGED)
        _EXTRACTED.append(folder / PACKAGED)
    return _EXTRACTED[0]
