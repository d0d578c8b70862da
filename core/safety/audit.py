"""The safety audit trail and rule switches in SQLite: what was screened (as a hash), when, and which rules fired."""

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from core import db


@dataclass(frozen=True)
class AuditEntry:
    """One logged verdict. The screened text itself is never stored, only its SHA-256 and length."""

    id: int
    at: str
    stage: str
    rule_ids: tuple[str, ...]
    action: str
    content_sha256: str
    text_len: int

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return {**asdict(self), "rule_ids": list(self.rule_ids)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def log_verdict(stage: str, action: str, rule_ids: list[str], text: str) -> int:
    """Append one verdict to the audit table.

    Args:
        stage: "input" or "output".
        action: The verdict's action ("allow", "emergency" or "block").
        rule_ids: Ids of the rules that fired.
        text: The screened text; only its hash and length are stored.

    Returns:
        The id of the new audit row.
    """
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with db.connect() as conn:
        cur = conn.execute(
            "INSERT INTO safety_audit (at, stage, rule_ids, action, content_sha256, text_len) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (_now(), stage, json.dumps(rule_ids), action, digest, len(text)),
        )
        return int(cur.lastrowid)


def recent(limit: int = 200) -> list[AuditEntry]:
    """Return the newest audit rows first.

    Args:
        limit: How many rows at most.

    Returns:
        The rows.
    """
    with db.connect() as conn:
        rows = conn.execute("SELECT * FROM safety_audit ORDER BY id DESC LIMIT ?", (max(0, limit),)).fetchall()
    return [
        AuditEntry(
            id=r["id"],
            at=r["at"],
            stage=r["stage"],
            rule_ids=tuple(json.loads(r["rule_ids"])),
            action=r["action"],
            content_sha256=r["content_sha256"],
            text_len=r["text_len"],
        )
        for r in rows
    ]


def rule_states() -> dict[str, bool]:
    """Return the rule switches set on the Safety page or with ``workbench safety enable|disable``.

    Returns:
        Rule id to enabled; rules never switched are absent (their file default applies).
    """
    with db.connect() as conn:
        rows = conn.execute("SELECT rule_id, enabled FROM safety_rule_state").fetchall()
    return {r["rule_id"]: bool(r["enabled"]) for r in rows}


def set_rule_state(rule_id: str, enabled: bool) -> None:
    """Switch a rule on or off for this workbench home (checking that the id exists is the caller's job).

    Args:
        rule_id: The rule id.
        enabled: The new state.
    """
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO safety_rule_state (rule_id, enabled, changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT(rule_id) DO UPDATE SET enabled = excluded.enabled, changed_at = excluded.changed_at",
            (rule_id, int(enabled), _now()),
        )
