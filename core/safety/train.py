"""Fit the learned safety layer on the train split (plus the user's examples), pick thresholds on dev, gate, save.

1. Embed every prompt with MiniLM (cached per text and model fingerprint, so a retrain takes seconds).
2. Fit a small classifier with torch: class-balanced cross-entropy, full batch, fixed seed (logistic regression or
   a one-hidden-layer MLP).
3. On the dev split, choose per-label thresholds and overrides for the combined screen: the highest recall whose
   false flags of informational prompts stay within the budgets, then the fewest flags.
4. Gate: the new layer replaces the one in force only if the combination does no worse on dev and on the frozen
   test split (each recall at least as high, each false-flag rate no higher than the old one's or the target).
   Otherwise the last good layer stays in force, as with rule files.
"""

import time
from dataclasses import replace
from itertools import product
from pathlib import Path

import numpy as np

from core import jobs
from core.config import SafetyTrainConfig
from core.fileio import atomic_write_json
from core.runfolder import now_iso, tool_versions
from core.safety import examples
from core.safety.evaluate import TARGETS, layer_predictions, metrics
from core.safety.learned import (
    EMBEDDER,
    LABELS,
    Classifier,
    LearnedLayer,
    LearnedLayerError,
    current_pointer,
    embed_windows,
    layer_in_force,
    save_layer,
    shared_embedder,
    user_layers_dir,
)
from core.safety.matching import RuleHit
from core.safety.policy import rule_label
from core.safety.screen import screen_input
from core.safety.store import RuleStore

JOB_MODULE = "core.safety.train"
# 1.01: the layer never fires that label (when no threshold keeps dev within budget, the other label still may).
THRESHOLDS = (*(round(x, 3) for x in np.arange(0.05, 0.951, 0.025)), 1.01)
OVERRIDES = (0.8, 0.9, 0.95, 0.99, 1.01)  # 1.01: a suppressed rule match is never overridden
SHIPPED_CACHE_DIR = Path(__file__).resolve().parent / "learned"  # embedding-cache-<fingerprint>.safetensors


def embed_cached(texts: list[str], layer_embedder, progress) -> list[np.ndarray]:
    """Each text's window vectors (windows, dim), with a per-text cache in ``<home>/safety/embedding-cache``."""
    from safetensors.numpy import load_file, save

    from core.fileio import atomic_write_bytes

    cache_path = user_layers_dir().parent / f"embedding-cache-{layer_embedder.fingerprint}.safetensors"
    cached: dict[str, np.ndarray] = {}
    # The shipped splits' vectors come with the shipped layer, so a first retrain only embeds the user's examples.
    for path in (SHIPPED_CACHE_DIR / f"embedding-cache-{layer_embedder.fingerprint}.safetensors", cache_path):
        if path.exists():
            try:
                cached.update(load_file(str(path)))
            except (OSError, ValueError):
                pass  # a damaged cache is only slower
    shipped = len(cached) if not cache_path.exists() else None
    keys = [examples.data_hash([{"text": t, "label": "informational"}])[:32] for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cached}.items())
    if missing:
        for start in range(0, len(missing), 256):
            batch = missing[start : start + 256]
            vectors, counts = embed_windows([t for _, t in batch], layer_embedder)
            at = 0
            for (k, _), n in zip(batch, counts, strict=True):
                cached[k] = vectors[at : at + n]  # (windows, dim)
                at += n
            progress(0.1 + 0.5 * min(1.0, (start + len(batch)) / len(missing)), f"Embedded {start + len(batch)}"
                     f"/{len(missing)} new prompts")  # fmt: skip
    if missing or shipped is not None:
        atomic_write_bytes(cache_path, save({k: np.ascontiguousarray(v) for k, v in cached.items()}))
    return [cached[k] for k in keys]


def _windows_to_rows(per_text: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Every window of a text is a training row with the text's label: a long message's emergency may be in any.
    return np.vstack(per_text), np.concatenate([np.full(len(v), label) for v, label in zip(per_text, y, strict=True)])


def fit(x: np.ndarray, y: np.ndarray, config: SafetyTrainConfig) -> dict[str, np.ndarray]:
    """Fit ``config.ensemble`` classifiers with consecutive seeds and merge them into one (see ``_merge``).

    Args:
        x: Unit-length embeddings, shape (N, dim).
        y: Label indices into ``LABELS``, shape (N,).
        config: Model kind, ensemble size and optimiser settings.

    Returns:
        The tensors (``w1``, ``b1`` and for an MLP ``w2``, ``b2``), float32, weights as (in, out).
    """
    members = [_fit_one(x, y, config, config.seed + k) for k in range(config.ensemble)]
    return _merge(members)


def _merge(members: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    # The mean of K models' logits is one model: logistic regressions average their weights; MLPs put their
    # hidden units side by side (w1, b1 concatenated) and average through w2 / K.
    k = len(members)
    if "w2" not in members[0]:
        return {name: np.mean([m[name] for m in members], axis=0).astype(np.float32) for name in ("w1", "b1")}
    return {
        "w1": np.concatenate([m["w1"] for m in members], axis=1),
        "b1": np.concatenate([m["b1"] for m in members]),
        "w2": np.concatenate([m["w2"] for m in members], axis=0) / k,
        "b2": np.mean([m["b2"] for m in members], axis=0),
    }


def _fit_one(x: np.ndarray, y: np.ndarray, config: SafetyTrainConfig, seed: int) -> dict[str, np.ndarray]:
    import torch

    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    counts = torch.bincount(yt, minlength=len(LABELS)).clamp(min=1).float()
    weight = counts.sum() / (len(LABELS) * counts)  # balanced classes
    weight[LABELS.index("emergency")] *= config.emergency_weight  # a missed emergency is the worst failure
    if config.kind == "mlp":
        model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], config.hidden), torch.nn.ReLU(),
                                    torch.nn.Linear(config.hidden, len(LABELS)))  # fmt: skip
    else:
        model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], len(LABELS)))
    # MiniLM embeddings are unit length with small components: scale them so the logits can be confident.
    scale = 10.0
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    for _ in range(config.epochs):
        optimiser.zero_grad()
        loss = loss_fn(model(xt * scale), yt)
        loss.backward()
        optimiser.step()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    tensors = {"w1": linears[0].weight.detach().numpy().T * scale, "b1": linears[0].bias.detach().numpy()}
    if len(linears) == 2:
        tensors.update(w2=linears[1].weight.detach().numpy().T, b2=linears[1].bias.detach().numpy())
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}


def screen_rows(rows: list[dict], rules) -> tuple[list[tuple[tuple[RuleHit, ...], tuple[RuleHit, ...]]], list[str]]:
    """Screen labelled rows as the chat does: per row, the rule hits and suppressed matches, and the redacted text.

    The learned layer reads the redacted text in the chat and in ``safety eval``, so dev and test are scored on it.
    """
    verdicts = [screen_input(r["text"], rules, log=False) for r in rows]
    return [(v.hits, v.suppressed) for v in verdicts], [v.redacted for v in verdicts]


def _with(scores, thresholds: dict, overrides: dict):
    return [replace(s, thresholds=thresholds, overrides=overrides) for s in scores]


def _fires(counts: np.ndarray, quiet: np.ndarray, p: np.ndarray, combos: list[tuple[float, float]]) -> np.ndarray:
    """Vectorised ``policy.label_fires`` for every (threshold, override) combo: bool array (combos, rows)."""
    t = np.array([c[0] for c in combos])[:, None]
    o = np.maximum(np.array([c[1] for c in combos]), np.array([c[0] for c in combos]))[:, None]
    return counts[None, :] | (~quiet[None, :] & (p[None, :] >= t)) | (quiet[None, :] & (p[None, :] >= o))


def choose_thresholds(facts, scores, labels: list[str], config: SafetyTrainConfig) -> tuple[dict, dict]:
    """Pick per-label thresholds and overrides on dev for the combined screen, both labels at once.

    Every (threshold, override) pair of the emergency label is tried with every pair of the advice label, as the
    decision table combines them (an emergency wins over a block, so a low emergency threshold costs advice
    recall). Among the choices whose dev false flags of informational prompts stay within the budgets, those with
    the highest lower recall of the two labels, then the highest emergency recall, tie. Of the tied choices, the
    one nearest the middle of their range of thresholds and overrides wins (then the higher overrides, then the
    higher thresholds): an edge of the range sits right beside the dev prompts that decided it, and on dev split
    by writer the middle kept more recall on the writer not used for choosing.

    Args:
        facts: Per row, the rule hits and suppressed matches.
        scores: Per row, the layer's LayerScores.
        labels: Per row, the true label.
        config: The false-flag budgets.

    Returns:
        ``(thresholds, overrides)``, each ``{"emergency": x, "personal_advice": y}``.
    """
    y = np.array(labels)
    rows = {label: y == label for label in LABELS}
    combos = [(t, o) for t, o in product(THRESHOLDS, OVERRIDES) if o >= t]
    fired = {}
    for label in ("emergency", "personal_advice"):
        counts = np.array([any(_counts_for(h, label) for h in hits) for hits, _ in facts])
        quiet = np.array([any(_counts_for(h, label) for h in sup) for _, sup in facts]) & ~counts
        p = np.array([s.probs[label] for s in scores])
        fired[label] = _fires(counts, quiet, p, combos)  # (combos, rows)
    fe, fa = fired["emergency"].astype(np.float32), fired["personal_advice"].astype(np.float32)
    not_e = 1.0 - fe
    n = {label: max(1, int(m.sum())) for label, m in rows.items()}
    e_recall = fe[:, rows["emergency"]].sum(1) / n["emergency"]  # (Ce,)
    false_e = fe[:, rows["informational"]].sum(1) / n["informational"]  # (Ce,)
    # (Ca, Ce): advice rows blocked, informational rows blocked.
    a_recall = fa[:, rows["personal_advice"]] @ not_e[:, rows["personal_advice"]].T / n["personal_advice"]
    false_b = fa[:, rows["informational"]] @ not_e[:, rows["informational"]].T / n["informational"]
    ok = (false_b <= config.false_block_budget + 1e-9) & (false_e[None, :] <= config.false_emergency_budget + 1e-9)
    if not ok.any():
        return {"emergency": 1.01, "personal_advice": 1.01}, {"emergency": 1.01, "personal_advice": 1.01}
    candidates = list(zip(*np.nonzero(ok), strict=True))  # (advice combo, emergency combo)
    rank = {c: (round(float(min(e_recall[c[1]], a_recall[c])), 6), round(float(e_recall[c[1]]), 6))
            for c in candidates}  # fmt: skip
    top = max(rank.values())
    tied = [c for c in candidates if rank[c] == top]
    # The middle of the tied range, per label, of the threshold and the override.
    middle = np.median([combos[ia] + combos[ie] for ia, ie in tied], axis=0)

    def preference(c: tuple[int, int]) -> tuple:
        (t_a, o_a), (t_e, o_e) = combos[c[0]], combos[c[1]]
        return float(np.abs(np.array([t_a, o_a, t_e, o_e]) - middle).sum()), -o_e, -o_a, -t_e, -t_a

    ia, ie = min(tied, key=preference)
    thresholds = {"emergency": float(combos[ie][0]), "personal_advice": float(combos[ia][0])}
    overrides = {"emergency": float(combos[ie][1]), "personal_advice": float(combos[ia][1])}
    return thresholds, overrides


def _counts_for(hit, label: str) -> bool:
    return rule_label(hit.category, hit.action) == label


def read_splits(train_rows: list[dict], dev: list[dict], test: list[dict], rules, embedder, progress) -> dict:
    """Screen dev and test and embed what a retrain reads: the training prompts as written, dev and test redacted.

    Returns:
        Per split (``train``, ``dev``, ``test``): ``(facts, texts, vectors)``, facts as ``screen_rows`` gives them
        (None for train), the texts embedded and their window vectors as ``embed_cached`` returns them.
    """
    progress(0.05, "Screening dev and test")
    (dev_facts, dev_texts), (test_facts, test_texts) = screen_rows(dev, rules), screen_rows(test, rules)
    progress(0.1, "Embedding")
    texts = {"train": [r["text"] for r in train_rows], "dev": dev_texts, "test": test_texts}
    per_text = embed_cached(texts["train"] + dev_texts + test_texts, embedder, progress)
    out, at = {}, 0
    for split, facts in (("train", None), ("dev", dev_facts), ("test", test_facts)):
        out[split] = (facts, texts[split], per_text[at : at + len(texts[split])])
        at += len(texts[split])
    return out


def layer_figures(layer: LearnedLayer | None, rows: list[dict], facts, vectors: list[np.ndarray]) -> dict:
    """Rules, learned and combined figures on labelled rows, from ``screen_rows`` and ``embed_cached``.

    With ``layer`` None, the rules alone.
    """
    scores = layer.scores_from(np.vstack(vectors), [len(v) for v in vectors]) if layer is not None else None
    return _figures(rows, facts, scores)


def _figures(rows, facts, scores) -> dict:
    labels = [r["label"] for r in rows]
    pick = ("n", "emergency_recall", "personal_advice_recall", "false_block_only_rate", "false_emergency_rate",
            "false_block_rate", "accuracy", "targets_met")  # fmt: skip
    out = {}
    for name, predicted in layer_predictions(facts, scores).items():
        m = {**metrics(labels, predicted), "n": len(labels)}
        out[name] = {k: m[k] for k in pick}
    return out


def _same_space(classifier: Classifier, embedder) -> bool:
    want = classifier.manifest["embedding"]
    return (want["model"], want["fingerprint"]) == (embedder.name, embedder.fingerprint)


def _no_worse(new: dict, old: dict) -> list[str]:
    reasons = []
    for key in ("emergency_recall", "personal_advice_recall"):
        if new[key] < old[key]:
            reasons.append(f"{key} {new[key]:.3f} < {old[key]:.3f}")
    for key in ("false_block_only_rate", "false_emergency_rate"):
        if new[key] > max(old[key], TARGETS[key]):
            reasons.append(f"{key} {new[key]:.3f} > {max(old[key], TARGETS[key]):.3f}")
    return reasons


def train(config: SafetyTrainConfig | None = None, progress=None) -> dict:
    """Fit, choose thresholds, gate and save a learned layer (see the module docstring).

    Args:
        config: Settings; the defaults when omitted.
        progress: ``progress(fraction, message)``.

    Returns:
        The report: ``version``, ``folder``, ``accepted``, ``reasons``, ``in_force``, data counts and hash,
        ``thresholds``, and ``dev`` / ``test`` figures for the new layer and the previous one (rules, learned,
        combined).

    Raises:
        WorkbenchError: A split or the user's examples cannot be read.
        EmbeddingError: The embedding model is not available.
    """
    config = config or SafetyTrainConfig()
    report = progress or (lambda *a, **k: None)
    started = time.perf_counter()
    report(0.0, "Reading the labelled prompts")
    dev, test = examples.load_split("dev"), examples.load_split("test")
    held_out = {examples.key(r["text"]) for r in dev + test}
    user = examples.user_examples() if config.user_examples else []
    # A prompt that is also in dev or test is left out of training, whoever added it.
    train_rows = [r for r in examples.load_split("train") + user if examples.key(r["text"]) not in held_out]
    embedder = shared_embedder(EMBEDDER)
    rules = RuleStore().current()
    read = read_splits(train_rows, dev, test, rules, embedder, report)
    (_, _, train_vecs), (dev_facts, _, dev_vecs), (test_facts, _, test_vecs) = read["train"], read["dev"], read["test"]
    y = np.array([LABELS.index(r["label"]) for r in train_rows])
    report(0.65, f"Fitting a {config.kind} on {len(train_rows)} prompts")
    x_rows, y_rows = _windows_to_rows(train_vecs, y)
    tensors = fit(x_rows, y_rows, config)
    data = {"train": len(train_rows), "user": len(user), "dev": len(dev), "test": len(test),
            "train_sha256": examples.data_hash(train_rows), "dev_sha256": examples.data_hash(dev),
            "test_sha256": examples.data_hash(test)}  # fmt: skip
    version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + data["train_sha256"][:8]
    manifest = {"version": version, "labels": list(LABELS), "kind": config.kind, "config": config.to_dict(),
                "embedding": {"model": embedder.name, "fingerprint": embedder.fingerprint, "dim": embedder.dim},
                "thresholds": {"emergency": 1.01, "personal_advice": 1.01}, "data": data, "created": now_iso(),
                "tools": tool_versions()}  # fmt: skip
    new = LearnedLayer(Classifier(tensors, manifest), embedder)
    report(0.75, "Choosing thresholds on dev")
    dev_scores = new.scores_from(np.vstack(dev_vecs), [len(v) for v in dev_vecs])
    thresholds, overrides = choose_thresholds(dev_facts, dev_scores, [r["label"] for r in dev], config)
    manifest.update(thresholds=thresholds, overrides=overrides)
    new = LearnedLayer(Classifier(tensors, manifest), embedder)
    report(0.85, "Scoring dev and test")
    figures = {
        "dev": _figures(dev, dev_facts, _with(dev_scores, thresholds, overrides)),
        "test": layer_figures(new, test, test_facts, test_vecs),
    }
    manifest["figures"] = figures
    try:
        old_classifier, _ = layer_in_force()
    except LearnedLayerError:
        old_classifier = None  # no layer at all yet (a first training): the rules alone are the previous screen
    previous: dict = {"version": old_classifier.version if old_classifier else None}
    for split, rows, facts, vecs in (("dev", dev, dev_facts, dev_vecs), ("test", test, test_facts, test_vecs)):
        if old_classifier is not None and _same_space(old_classifier, embedder):
            previous[split] = layer_figures(LearnedLayer(old_classifier, embedder), rows, facts, vecs)
        else:
            previous[split] = {"combined": layer_figures(None, rows, facts, vecs)["rules"]}
    reasons = [f"{split}: {r}" for split in ("dev", "test")
               for r in _no_worse(figures[split]["combined"], previous[split]["combined"])]  # fmt: skip
    accepted = not reasons
    manifest["accepted"] = accepted
    folder = save_layer(user_layers_dir() / version, tensors, manifest)
    in_force = old_classifier.version if old_classifier else None
    if accepted and config.activate:
        atomic_write_json(current_pointer(), {"version": version, "at": now_iso()})
        in_force = version
    report(1.0, "Done" if accepted else "Kept the previous layer")
    return {"version": version, "folder": str(folder), "accepted": accepted, "reasons": reasons,
            "in_force": in_force, "data": data, "thresholds": thresholds, "overrides": overrides,
            "figures": figures, "previous": previous, "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def start(config: SafetyTrainConfig) -> str:
    """Retrain as a background job (``python -m core.safety.train config.json``); returns the job id."""
    return jobs.launch(JOB_MODULE, config.to_dict(), "Retrain the learned safety layer", stop_grace_s=10)


if __name__ == "__main__":

    def _work(config: dict, reporter: jobs.Reporter) -> dict:
        return train(SafetyTrainConfig.from_dict(config), progress=reporter.progress)

    jobs.run_child(_work)
