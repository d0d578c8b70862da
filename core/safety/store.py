"""Where the rules in force come from: the shipped rules.yaml merged with the user's file, and the last good set."""

import logging
from dataclasses import replace
from pathlib import Path

import yaml

from core import paths
from core.fileio import atomic_write_json, read_json
from core.safety import audit
from core.safety.rules import SHIPPED_RULES, RuleSet, SafetyRuleError, build_ruleset

log = logging.getLogger(__name__)


def user_rules_path() -> Path:
    """Return ``<WORKBENCH_HOME>/safety/rules.user.yaml`` (it may not exist)."""
    return paths.home() / "safety" / "rules.user.yaml"


def _last_good_path() -> Path:
    return paths.home() / "safety" / "rules.user.last-good.json"


def _read_yaml(path: Path) -> dict:
    try:
        # libyaml's C loader parses the rule file about ten times faster than the pure-Python one (4 vs 44 ms).
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SafetyRuleError(f"{path}: cannot read the rule file: {exc}") from exc
    if not isinstance(data, dict):
        raise SafetyRuleError(f"{path}: a rule file must be a mapping with a 'rules' list")
    return data


def _merge(shipped: dict, user: dict, user_file: str) -> dict:
    unknown = set(user) - {"macros", "rules"}
    if unknown:
        raise SafetyRuleError(f"{user_file}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    merged = dict(shipped)
    merged["macros"] = {**(shipped.get("macros") or {}), **(user.get("macros") or {})}
    by_id = {r["id"]: dict(r) for r in shipped.get("rules") or []}
    order = list(by_id)
    user_ids: set = set()
    for raw in user.get("rules") or []:
        if not isinstance(raw, dict) or not raw.get("id"):
            raise SafetyRuleError(f"{user_file}: every rule needs an id, got {raw!r}")
        if raw["id"] in user_ids:
            raise SafetyRuleError(f"{user_file}: rule {raw['id']!r}: duplicate id")
        user_ids.add(raw["id"])
        # Same id: the user's fields replace the shipped ones key by key (change a message, switch a pattern).
        by_id[raw["id"]] = {**by_id.get(raw["id"], {}), **raw, "source": user_file}
        if raw["id"] not in order:
            order.append(raw["id"])
    merged["rules"] = [by_id[i] for i in order]
    return merged


def _shipped_data(path: Path) -> dict:
    data = _read_yaml(path)
    seen: set = set()
    for raw in data.get("rules") or []:
        if isinstance(raw, dict):
            # Checked here too: merging by id would otherwise hide a duplicate in the shipped file.
            if raw.get("id") in seen:
                raise SafetyRuleError(f"{path}: rule {raw.get('id')!r}: duplicate id")
            seen.add(raw.get("id"))
            raw.setdefault("source", "shipped")
    return data


def load_rules(shipped: Path = SHIPPED_RULES, user: Path | None = None) -> RuleSet:
    """Load the shipped rules merged with the user's rule file.

    A user file that is invalid is refused: the rule set falls back to the last user file that loaded (kept
    as ``rules.user.last-good.json``) or to the shipped rules, and ``RuleSet.errors`` says why.

    Args:
        shipped: The rules that ship with the code.
        user: The user extension file; defaults to ``user_rules_path()``.

    Returns:
        The rule set in force (without the Safety page's toggles: see ``RuleStore``).

    Raises:
        SafetyRuleError: The shipped file itself is invalid.
    """
    user = user or user_rules_path()
    shipped_data = _shipped_data(shipped)
    if not user.exists():
        return build_ruleset(shipped_data, (str(shipped),))
    try:
        user_data = _read_yaml(user)
        ruleset = build_ruleset(_merge(shipped_data, user_data, str(user)), (str(shipped), str(user)))
    except SafetyRuleError as exc:
        log.warning("ignoring the safety rule file %s: %s", user, exc)
        error = f"{exc}. The previous rules stay in force until the file is fixed."
        last_good = _last_good_path()
        if last_good.exists():
            try:
                data = _merge(shipped_data, read_json(last_good), str(user))
                return build_ruleset(data, (str(shipped), f"{user} (last good)"), errors=(error,))
            except (SafetyRuleError, ValueError) as stale:
                log.warning("the last good copy of %s no longer loads: %s", user, stale)
        return build_ruleset(shipped_data, (str(shipped),), errors=(error,))
    _remember_good(user_data)
    return ruleset


def _remember_good(user_data: dict) -> None:
    # A JSON data copy of the last user file that validated (not the YAML text, which may be mid-edit).
    path = _last_good_path()
    try:
        if path.exists() and read_json(path) == user_data:
            return
    except ValueError:
        pass
    atomic_write_json(path, user_data)


class RuleStore:
    """Hands out the rule set in force, reloading only when a rule file changed (keeps the last good set).

    Create one per long-lived caller (the chat layer, a CLI run over a file); it is not shared process-wide.
    """

    def __init__(self, shipped: Path = SHIPPED_RULES, user: Path | None = None) -> None:
        self.shipped = shipped
        self.user = user
        self._stamp: tuple | None = None
        self._ruleset: RuleSet | None = None

    def _mtimes(self) -> tuple:
        user = self.user or user_rules_path()
        return tuple(p.stat().st_mtime_ns if p.exists() else None for p in (self.shipped, user))

    def current(self, toggles: bool = True) -> RuleSet:
        """Return the rule set in force.

        Args:
            toggles: Apply the rule switches stored in the database (the Safety page's toggles).

        Returns:
            The rule set; its ``errors`` name a rule file that was refused.

        Raises:
            SafetyRuleError: The shipped file is invalid and no earlier set loaded in this store.
        """
        stamp = self._mtimes()
        if stamp != self._stamp or self._ruleset is None:
            try:
                self._ruleset = load_rules(self.shipped, self.user)
            except SafetyRuleError as exc:
                if self._ruleset is None:
                    raise
                log.warning("keeping the last good safety rules: %s", exc)
                self._ruleset = replace(self._ruleset, errors=(str(exc),))
            self._stamp = stamp
        if not toggles:
            return self._ruleset
        states = audit.rule_states()
        disabled = {r.id for r in self._ruleset.rules if not states.get(r.id, r.enabled)}
        return self._ruleset.with_disabled(frozenset(disabled))
