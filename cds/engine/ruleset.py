"""A whole rule directory: vocabulary, policy and rule files, checked together and digested."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cds.engine.diagnostics import Diagnostic
from cds.engine.lint import check_cross_file, stages
from cds.engine.loader import load_rule_file
from cds.engine.model import Rule, RuleFile
from cds.engine.policy import Policy, load_policy
from cds.engine.vocabulary import Vocabulary, load_vocabulary
from cds.engine.yamlpos import safe_load
from cds.errors import RuleError, RuleLoadError

RULE_GLOB = "*.yaml"
RULES_SUBDIR = "imatinib"
POLICY_VERSION_PREFIX = "policy:"  # the policy's part of the rule-set version


@dataclass(frozen=True)
class RuleSet:
    root: str
    vocabulary: Vocabulary
    policy: Policy
    files: tuple[RuleFile, ...]
    digest: str  # sha256 over the canonicalised rule, policy and vocabulary files
    version: str  # e.g. "renal@1.0.0+hepatic@1.2.0+policy:us-label@1.0.0"
    stage_of: Mapping[str, int]  # rule id -> evaluation stage (derived facts flow to later stages)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(rule for f in self.files if f.meta.status == "active" for rule in f.rules)

    def rule(self, rule_id: str) -> Rule:
        for f in self.files:
            for rule in f.rules:
                if rule.id == rule_id:
                    return rule
        raise KeyError(rule_id)


def find_root(path: Path) -> Path:
    """The rules root (the folder holding facts.yaml) for a root folder, a rule folder or a rule file."""
    for candidate in (path, *path.parents):
        if (candidate / "facts.yaml").is_file():
            return candidate
    raise RuleError(f"{path}: no facts.yaml found here or above; point at the rules directory")


def rule_paths(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    folder = path / RULES_SUBDIR if (path / RULES_SUBDIR).is_dir() else path
    return sorted(folder.glob(RULE_GLOB))


def check_rules(path: Path, *, trace: bool = True) -> tuple[RuleSet | None, list[Diagnostic]]:
    """Load and lint everything under ``path``; the RuleSet is None when there are errors.

    ``trace`` adds the guideline-map check (E019/E020): a completeness check of the documentation that
    `rules check` enforces; loading rules to evaluate or to print the trace itself does not need it.
    """
    root, vocabulary, policy, files, texts, diagnostics = _read(path)
    if any(d.severity == "error" for d in diagnostics):
        return None, sorted(diagnostics + (_statement_problems(policy, root, path) if trace else []))
    rule_set = _assemble(root, vocabulary, policy, files, texts)
    traced = _trace_problems(rule_set, root, path) if trace else []
    if any(d.severity == "error" for d in traced):
        return None, sorted(diagnostics + traced)
    return rule_set, sorted(diagnostics + traced)


def load_rules_partly(path: Path) -> tuple[RuleSet, list[Diagnostic]]:
    """The rules that load, for `rules test` while `rules check` still reports errors (never for the service).

    A rule with its own errors is left out by the loader; so are a repeated id (E007) and rules in a cycle of
    derivations (E014), which cannot be evaluated. Missing boundary tests and the like keep the rule.
    """
    root, vocabulary, policy, files, texts, diagnostics = _read(path)
    dropped = {(d.file, d.line) for d in diagnostics if d.code in ("E007", "E014")}
    kept = [replace(f, rules=tuple(r for r in f.rules if (r.file, r.line) not in dropped)) for f in files]
    return _assemble(root, vocabulary, policy, kept, texts), sorted(diagnostics)


def _read(path: Path) -> tuple[Path, Vocabulary, Policy, list[RuleFile], dict[str, str], list[Diagnostic]]:
    root = find_root(path)
    vocabulary = load_vocabulary(root / "facts.yaml")
    policy = load_policy(root / "policy.yaml")
    files: list[RuleFile] = []
    diagnostics: list[Diagnostic] = []
    texts: dict[str, str] = {}
    for file_path in rule_paths(path):
        shown = _display(file_path)
        text = file_path.read_text(encoding="utf-8")
        texts[shown] = text
        rule_file, found = load_rule_file(shown, text, vocabulary, policy)
        diagnostics += found
        if rule_file is not None:
            files.append(rule_file)
    if not texts:
        raise RuleError(f"{path}: no rule files ({RULE_GLOB}) found")
    diagnostics += check_cross_file(files, vocabulary)
    return root, vocabulary, policy, files, texts, diagnostics


def _assemble(
    root: Path, vocabulary: Vocabulary, policy: Policy, files: Sequence[RuleFile], texts: Mapping[str, str]
) -> RuleSet:
    active = [rule for f in files if f.meta.status == "active" for rule in f.rules]
    return RuleSet(
        root=str(root),
        vocabulary=vocabulary,
        policy=policy,
        files=tuple(files),
        digest=_digest(root, texts),
        version=rule_set_version(files, policy),
        stage_of=stages(active),
    )


def rule_set_version(files: Sequence[RuleFile], policy: Policy) -> str:
    """``renal@1.4.0+...+policy:us-label@1.0.0``: every active rule file and the policy, so that a change of a
    policy value (which must bump the policy's version) shows in the recorded version, not only in the digest."""
    parts = [f"{f.meta.id}@{f.meta.version}" for f in files if f.meta.status == "active"]
    return "+".join([*parts, f"{POLICY_VERSION_PREFIX}{policy.id}@{policy.version}"])


def _trace_problems(rule_set: RuleSet, root: Path, path: Path) -> list[Diagnostic]:
    """E019/E020 against rules/guideline-map.yaml, when the whole rule directory is checked and has a map."""
    from cds.engine.trace import MAP_FILE, check_trace

    if path.is_file() or not (root / MAP_FILE).is_file():
        return []
    return check_trace(rule_set)


def _statement_problems(policy: Policy, root: Path, path: Path) -> list[Diagnostic]:
    """E023 while the rules do not load: a changed policy value and the map statements quoting the old one."""
    from cds.engine.trace import MAP_FILE, check_statements

    if path.is_file() or not (root / MAP_FILE).is_file():
        return []
    return check_statements(policy, root / MAP_FILE)


def load_rules(path: Path) -> RuleSet:
    rule_set, diagnostics = check_rules(path, trace=False)
    if rule_set is None:
        raise RuleLoadError(diagnostics)
    return rule_set


def digest_of(path: Path) -> str:
    """The digest ``check_rules(path)`` records, computed without checking the rules (old versions too)."""
    root = find_root(path)
    return _digest(root, {str(p): p.read_text(encoding="utf-8") for p in rule_paths(path)})


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _digest(root: Path, texts: Mapping[str, str]) -> str:
    """sha256 over the parsed (canonical JSON) content, so formatting-only edits keep the digest."""
    parts = {Path(name).name: safe_load(text) for name, text in sorted(texts.items())}
    for extra in ("facts.yaml", "policy.yaml"):
        if (root / extra).is_file():
            parts[extra] = safe_load((root / extra).read_text(encoding="utf-8"))
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
