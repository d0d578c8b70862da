"""screen_input / screen_output: run the rules over a text; a Verdict has the action, hits with spans, redaction."""

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.safety import audit
from core.safety.learned import LayerScores, LearnedLayer, LearnedLayerError
from core.safety.matching import MAX_HITS_PER_RULE, RuleHit, Scan, run_rule
from core.safety.normalize import Folded, fold
from core.safety.policy import ACTION_LABEL, FIRING, LEARNED_MESSAGES, decide
from core.safety.rules import RuleSet
from core.safety.store import RuleStore

DISCLAIMER = (
    "This is general information from the workbench's sources, not medical advice. MedGemma Workbench is a "
    "research tool, not a medical device: check with a qualified clinician before acting on it, and call your "
    "local emergency number in an emergency."
)
ACTIONS = ("allow", "emergency", "block")
__all__ = ["ACTIONS", "DISCLAIMER", "MAX_HITS_PER_RULE", "RuleHit", "Verdict", "screen_input", "screen_output"]


@dataclass(frozen=True)
class Verdict:
    """What screening decided: ``action`` is allow, emergency (answer allowed, banner first) or block."""

    action: str
    stage: str
    hits: tuple[RuleHit, ...]
    redacted: str
    banner: str | None = None
    messages: tuple[str, ...] = ()
    disclaimer: str | None = None
    suppressed: tuple[RuleHit, ...] = ()
    flagged_passages: tuple[int, ...] = ()
    redacted_passages: tuple[str, ...] = ()
    audit_id: int | None = None
    rules_errors: tuple[str, ...] = field(default=(), repr=False)
    layer: str | None = None  # which layer decided the action: rules or learned (None for allow)
    fired: dict = field(default_factory=dict)  # per label (emergency, personal_advice): the layer that fired it
    learned: LayerScores | None = None
    learned_errors: tuple[str, ...] = ()
    masked: int = 0  # spans masked by redact rules (``hits`` shows at most MAX_HITS_PER_RULE per rule)

    @property
    def score(self) -> float | None:
        """The learned probability of the label behind the action (of the riskier label for allow)."""
        if self.learned is None:
            return None
        label = ACTION_LABEL[self.action]
        probs = self.learned.probs
        return round(probs[label] if label in FIRING else max(probs[f] for f in FIRING), 4)

    @property
    def embedding(self) -> np.ndarray | None:
        """The embedding of ``embedded_text`` the learned layer read (reuse it for retrieval of that text)."""
        return self.learned.embedding if self.learned is not None else None

    @property
    def rule_ids(self) -> list[str]:
        """Ids of the rules that fired, each once, in the order of their first hit."""
        return list(dict.fromkeys(h.rule_id for h in self.hits))

    def to_dict(self) -> dict:
        """Return the verdict as the CLI and the chat layer consume it."""
        return {
            "action": self.action,
            "stage": self.stage,
            "rules": [h.to_dict() for h in self.hits],
            "redacted": self.redacted,
            "banner": self.banner,
            "messages": list(self.messages),
            "disclaimer": self.disclaimer,
            "suppressed": [h.to_dict() for h in self.suppressed],
            "flagged_passages": list(self.flagged_passages),
            "redacted_passages": list(self.redacted_passages),
            "audit_id": self.audit_id,
            "layer": self.layer,
            "fired": dict(self.fired),
            "score": self.score,
            "learned": self.learned.to_dict() if self.learned is not None else None,
            "learned_errors": list(self.learned_errors),
            "masked": self.masked,
        }


def _redact(text: str, masks: list[tuple[int, int, str]], placeholders: dict[str, str]) -> str:
    """Replace each masked span ``(start, end, rule_id)`` with its rule's placeholder (overlaps merge)."""
    spans = sorted((start, end, placeholders[rule_id]) for start, end, rule_id in masks)
    out, pos = [], 0
    for start, end, placeholder in spans:
        if start < pos:  # overlaps the previous masked span: extend it
            if end > pos:
                pos = end
            continue
        out.extend((text[pos:start], placeholder))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _messages(hits: list[RuleHit], fired: dict) -> tuple[str | None, tuple[str, ...]]:
    emergency = [h.message for h in hits if h.category == "emergency" and h.action == "banner"]
    if fired.get("emergency") == "learned":
        emergency.append(LEARNED_MESSAGES["emergency"])
    banner = "\n\n".join(dict.fromkeys(emergency)) or None
    others = [h.message for h in hits if not (h.category == "emergency" and h.action == "banner")]
    if fired.get("personal_advice") == "learned":
        others.append(LEARNED_MESSAGES["personal_advice"])
    return banner, tuple(dict.fromkeys(others))


def _to_original(hits: list[RuleHit], folded: Folded, passages: list[Folded]) -> list[RuleHit]:
    """Map hit spans from the folded texts back to the texts as given."""
    out = []
    for h in hits:
        source = folded if h.passage is None else passages[h.passage]
        if source.origin is None:
            out.append(h)
        else:
            start, end = source.span(h.start, h.end)
            out.append(replace(h, start=start, end=end))
    return out


def _masks_to_original(masks: list, folded: Folded, passages: list[Folded]) -> dict[int | None, list]:
    """Group masked spans by passage (None: the screened text), mapped back to the texts as given."""
    if folded.origin is None and not passages:  # the common case, and the one with many spans: nothing to map
        return {None: [(start, end, rule_id) for _, start, end, rule_id in masks]}
    out: dict[int | None, list] = {}
    for passage, start, end, rule_id in masks:
        source = folded if passage is None else passages[passage]
        if source.origin is not None:
            start, end = source.span(start, end)
        out.setdefault(passage, []).append((start, end, rule_id))
    return out


def _screen(
    stage: str,
    text: str,
    context: dict[str, Any],
    ruleset: RuleSet | None,
    log: bool,
    learned: LearnedLayer | None = None,
    embedding: np.ndarray | None = None,
    embedder=None,
) -> Verdict:
    ruleset = ruleset or RuleStore().current()
    folded = fold(text)
    scan = Scan(folded.text, ruleset)
    passages = [str(p) for p in context.get("passages") or []]
    folded_passages = [fold(p) for p in passages]
    prepared = {
        "passages": [(p.text, Scan(p.text, ruleset)) for p in folded_passages],
        "unsupported_sentences": [fold(str(s)).text for s in context.get("unsupported_sentences") or []],
    }
    hits: list[RuleHit] = []
    suppressed: list[RuleHit] = []
    masks: list[tuple] = []
    active = ruleset.active(stage)
    # Masking rules run first, so that the framing cues of the other rules never read personal data.
    for group in ([r for r in active if r.action == "redact"], [r for r in active if r.action != "redact"]):
        masked = [(start, end) for passage, start, end, _ in masks if passage is None]
        if group and group[0].action != "redact" and masked:
            scan.blank(masked)
        for rule in group:
            found = run_rule(rule, folded.text, scan, prepared)
            hits += found.hits
            suppressed += found.suppressed
            masks += found.masks
    hits = _to_original(hits, folded, folded_passages)
    suppressed = _to_original(suppressed, folded, folded_passages)
    masks_by_passage = _masks_to_original(masks, folded, folded_passages)
    text_hits = sorted((h for h in hits if h.passage is None), key=lambda h: (h.start, h.rule_id))
    passage_hits = [h for h in hits if h.passage is not None]
    placeholders = {r.id: r.placeholder for r in ruleset.rules}
    redacted = _redact(text, masks_by_passage.get(None, []), placeholders)
    scores, learned_errors = None, ()
    if learned is not None and any(c.isalnum() for c in folded.text):  # nothing to read in "" or "?!"
        try:
            scores = learned.score(redacted, embedding=embedding, embedder=embedder)
        except LearnedLayerError as exc:  # the rules alone still screen; the verdict says why
            learned_errors = (str(exc),)
    decision = decide(hits, suppressed, scores)
    banner, messages = _messages(hits, decision.fired)
    verdict = Verdict(
        action=decision.action,
        stage=stage,
        hits=tuple(text_hits + passage_hits),
        redacted=redacted,
        banner=banner,
        messages=messages,
        disclaimer=DISCLAIMER if stage == "output" else None,
        suppressed=tuple(suppressed),
        flagged_passages=tuple(sorted({h.passage for h in passage_hits if h.passage is not None})),
        redacted_passages=tuple(_redact(p, masks_by_passage.get(i, []), placeholders) for i, p in enumerate(passages)),
        masked=len(masks),
        rules_errors=ruleset.errors,
        layer=decision.layer,
        fired=decision.fired,
        learned=scores,
        learned_errors=learned_errors,
    )
    if log:
        verdict = replace(verdict, audit_id=audit.log_verdict(stage, decision.action, verdict.rule_ids, text))
    return verdict


def screen_input(
    text: str,
    rules: RuleSet | None = None,
    *,
    log: bool = True,
    learned: LearnedLayer | None = None,
    embedding: np.ndarray | None = None,
    embedder=None,
) -> Verdict:
    """Screen what a user typed before it reaches a model.

    Emergencies give action ``emergency``: an informational answer is still allowed, with the banner shown
    first. A request for personal advice gives ``block`` with a message pointing to a clinician, unless an
    emergency also fired (the emergency wins). Personal data is masked in ``redacted``: send that to the model.
    With a learned layer, the rules and its scores combine as ``core.safety.policy`` lays down; the verdict names
    the layer that fired and its score.

    Args:
        text: The user's message.
        rules: A rule set (pass one from ``RuleStore().current()`` when screening many texts); by default the
            rules in force are loaded.
        log: Append the verdict to the audit table (a hash of the text, never the text).
        learned: The learned layer (``LayerStore().current()``); None screens with the rules alone.
        embedding: The caller's unit-length embedding of the redacted text, so the layer adds no encode.
        embedder: The caller's embedding model; used instead of the layer's own when it is the same model.

    Returns:
        The verdict.

    Raises:
        SafetyRuleError: No valid rule set could be loaded.
    """
    return _screen("input", text, {}, rules, log, learned, embedding, embedder)


def screen_output(
    text: str, context: dict[str, Any] | None = None, rules: RuleSet | None = None, *, log: bool = True
) -> Verdict:
    """Screen a model's answer (and the retrieved passages it was given) before it is shown.

    The ``context`` contract with the chat layer:

    - ``context["passages"]``: list of str, the retrieved texts given to the model. Prompt-injection rules run
      over each; the indices of passages with hits are in ``Verdict.flagged_passages`` and their cleaned text in
      ``Verdict.redacted_passages`` (hits carry ``passage``, their spans index that passage).
    - ``context["unsupported_sentences"]``: list of str, sentences of ``text`` that the chat layer's citation
      check could not support. Each gives an ``uncited.claims`` hit (action append: a note in ``messages``),
      with its span in ``text`` (``-1`` when the sentence is not found verbatim).

    Dosing instructions aimed at the reader block the answer or are masked, per rule. The disclaimer is always
    set on output verdicts.

    Args:
        text: The model's answer.
        context: Optional passages and unsupported sentences, as above.
        rules: A rule set; by default the rules in force are loaded.
        log: Append the verdict to the audit table (a hash of the text, never the text).

    Returns:
        The verdict.

    Raises:
        SafetyRuleError: No valid rule set could be loaded.
    """
    return _screen("output", text, context or {}, rules, log)
