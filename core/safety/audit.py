"""The safety audit trail and rule switches in SQLite: what was screened (as a hash), when, and which rules fired."""

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from core import db, paths

HASH_KIND = "hmac-sha256"  # rows written before the per-install key existed say "sha256"


@dataclass(frozen=True)
class AuditEntry:
    """One logged verdict. The screened text itself is never stored, only a keyed hash of it and its length.

    ``content_sha256`` is an HMAC-SHA256 under this install's secret key (``hash_kind``): an unsalted hash of a
    short text can be reversed by hashing guesses, a keyed one only by someone who also has the key file.
    """

    id: int
    at: str
    stage: str
    rule_ids: tuple[str, ...]
    action: str
    content_sha256: str
    text_len: int
    hash_kind: str = HASH_KIND

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return {**asdict(self), "rule_ids": list(self.rule_ids)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def audit_key_path() -> Path:
    """Return the file holding this install's audit key (``<home>/safety/audit.key``, readable by its owner only)."""
    return paths.home() / "safety" / "audit.key"


def audit_key() -> bytes:
    """Return this install's secret audit key, creating it on first use.

    Two processes creating it at once agree on one key: each writes a candidate and links it into place, which
    succeeds for exactly one of them; the others read the winner's.

    Returns:
        32 random bytes.
    """
    path = audit_key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".audit.key.", dir=path.parent)  # created with mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip())


def content_hash(text: str) -> str:
    """Return the keyed hash the audit stores for ``text`` (to look up a text you have, not to recover one)."""
    return hmac.new(audit_key(), text.encode("utf-8"), hashlib.sha256).hexdigest()


def log_verdict(stage: str, action: str, rule_ids: list[str], text: str) -> int:
    """Append one verdict to the audit table.

    Args:
        stage: "input" or "output".
        action: The verdict's action ("allow", "emergency" or "block").
        rule_ids: Ids of the rules that fired.
        text: The screened text; only its keyed hash and length are stored.

    Returns:
        The id of the new audit row.
    """
    digest = content_hash(text)
    with db.connect() as conn:
        cur = conn.execute(
            "INSERT INTO safety_audit (at, stage, rule_ids, action, content_sha256, text_len, hash_kind) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_now(), stage, json.dumps(rule_ids), action, digest, len(text), HASH_KIND),
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
            hash_kind=r["hash_kind"],
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
