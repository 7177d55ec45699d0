"""A semantic diff of two rule directories (``imatinib-cds rules diff``), for the P&T committee.

Each side is loaded the way the service loads it (``load_rules``, the terminology, the PK models), so a side
that does not load is an error, and what is compared is the loaded content: formatting, comments and YAML
anchors never show as changes. Sections: rules, rule files, policy, terminology, PK models, other files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds.engine.diff_data import diff_files, diff_models, diff_policy, diff_terminology
from cds.engine.diff_model import RuleSetDiff, Side, Sides
from cds.engine.diff_rules import diff_rule_files, diff_rules, every_rule
from cds.engine.ruleset import RuleSet, find_root, load_rules
from cds.engine.yamlpos import safe_load
from cds.errors import RuleError
from cds.fhir.terminology import Terminology, load_terminology
from cds.pk.model import load_model

TERMINOLOGY_DIR = "terminology"
MODELS_DIR = "models"
WHOLE_FILES = ("facts.yaml", "mapping.yaml", "guideline-map.yaml")  # compared only as a whole


@dataclass(frozen=True)
class Snapshot:
    """One rules root, loaded."""

    path: str  # as given
    rule_set: RuleSet
    terminology: Terminology
    models: Mapping[str, Any]  # model name (file stem) -> the parsed file, which load_model accepted
    whole_files: Mapping[str, Any]  # WHOLE_FILES that exist, parsed


def load_snapshot(path: Path) -> Snapshot:
    if not path.is_dir():
        raise RuleError(f"{path}: not a directory")
    root = find_root(path)
    folder = root / TERMINOLOGY_DIR
    return Snapshot(
        path=str(path),
        rule_set=load_rules(root),
        terminology=load_terminology(folder) if folder.is_dir() else Terminology({}, {}),
        models=_models(root / MODELS_DIR),
        whole_files={name: _parsed(root / name) for name in WHOLE_FILES if (root / name).is_file()},
    )


def _models(folder: Path) -> dict[str, Any]:
    models = {}
    for path in sorted(folder.glob("*.yaml")):
        load_model(path)  # refuses a model the estimator could not use
        models[path.stem] = _parsed(path)
    return models


def _parsed(path: Path) -> Any:
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from exc


def diff_snapshots(old: Snapshot, new: Snapshot) -> RuleSetDiff:
    before, after = old.rule_set, new.rule_set
    return RuleSetDiff(
        sides=Sides(_side(old), _side(new)),
        rules=diff_rules(before, after),
        rule_files=diff_rule_files(before, after),
        policy=diff_policy(before.policy, after.policy, every_rule(after)),
        terminology=diff_terminology(old.terminology, new.terminology),
        models=diff_models(old.models, new.models),
        other_files=diff_files(old.whole_files, new.whole_files),
    )


def _side(snapshot: Snapshot) -> Side:
    return Side(snapshot.path, snapshot.rule_set.version, snapshot.rule_set.digest)


def diff_rule_dirs(old: Path, new: Path) -> RuleSetDiff:
    return diff_snapshots(load_snapshot(old), load_snapshot(new))
