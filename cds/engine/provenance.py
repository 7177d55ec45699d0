"""Which rule files a recorded rule-set digest stands for: the rules folder, its git history, the audit log.

Every decision records the rule-set digest and version (``rules which DIGEST`` is how an auditor gets from a
decision back to the rule files that made it). The digest is over the parsed files, so a commit that changed
only comments or layout has the digest of the commit before it.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds.engine.ruleset import digest_of, find_root
from cds.errors import CdsError


@dataclass(frozen=True)
class Commit:
    commit: str
    date: str
    subject: str
    folder: str  # the rules folder inside the repository


@dataclass(frozen=True)
class Recorded:
    digest: str
    version: str
    decisions: int
    first: str
    last: str


def commits_with_digest(rules: Path, digest: str) -> list[Commit]:
    """Commits (newest first) of the repository holding ``rules`` whose rules folder has ``digest`` (a prefix)."""
    root = find_root(rules).resolve()
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    folder = str(root.relative_to(top))
    found = []
    for line in _git(top, "log", "--format=%H %cs %s", "--", folder).splitlines():
        commit, date, subject = (line.split(" ", 2) + [""])[:3]
        if _digest_at(top, commit, folder).startswith(digest):
            found.append(Commit(commit, date, subject, folder))
    return found


def recorded_with_digest(entries: Iterable[Mapping[str, Any]], digest: str) -> list[Recorded]:
    """Per full digest that starts with ``digest``: the version recorded with it and the decisions made."""
    seen: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        ruleset = (entry.get("payload") or {}).get("ruleset") or {}
        full = str(ruleset.get("digest", ""))
        if full.startswith(digest):
            seen.setdefault((full, str(ruleset.get("version", ""))), []).append(str(entry.get("created_at", "")))
    return [Recorded(d, v, len(times), min(times), max(times)) for (d, v), times in seen.items()]


def _digest_at(top: Path, commit: str, folder: str) -> str:
    archive = subprocess.run(["git", "-C", str(top), "archive", commit, folder], capture_output=True, check=False)
    if archive.returncode != 0:
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            return digest_of(Path(tmp) / folder)
        except (CdsError, OSError, yaml.YAMLError):  # a commit whose rules cannot be read records nothing
            return ""


def _git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CdsError(f"git {args[0]} in {where}: {done.stderr.strip() or 'failed'}")
    return done.stdout
