"""The learned layer: training, the gate, storage (safetensors + manifest), windows, fallbacks, the chat's vector."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from core import paths
from core.config import SafetyTrainConfig
from core.safety import audit, examples, learned, load_rules, screen_input
from core.safety.learned import LayerStore, LearnedLayer, LearnedLayerError, load_layer
from core.safety.train import train

EVAL = Path(__file__).resolve().parents[3] / "data" / "eval"


@pytest.fixture()
def tiny_splits(tmp_path, monkeypatch):
    """Small train / dev / test splits from the labelled eval sets, and no shipped layer."""
    rows = [json.loads(line) for line in (EVAL / "safety.jsonl").read_text().splitlines()]
    holdout = [json.loads(line) for line in (EVAL / "safety_holdout.jsonl").read_text().splitlines()]
    folder = tmp_path / "examples"
    folder.mkdir()
    for name, part in (("train", rows[:90]), ("dev", holdout[:40]), ("test", holdout[40:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    monkeypatch.setattr(examples, "EXAMPLES_DIR", folder)
    monkeypatch.setattr(learned, "SHIPPED_LAYER", tmp_path / "no-shipped-layer")
    return folder


def test_training_writes_safetensors_and_a_manifest_and_puts_the_layer_in_force(tiny_splits):
    result = train(SafetyTrainConfig(epochs=150))
    assert result["accepted"] and result["in_force"] == result["version"]
    folder = Path(result["folder"])
    assert sorted(p.name for p in folder.iterdir()) == ["classifier.safetensors", "manifest.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data"]["train_sha256"] == examples.data_hash(examples.load_split("train"))
    assert manifest["embedding"]["model"] == "all-minilm-l6-v2" and len(manifest["embedding"]["fingerprint"]) == 16
    assert set(manifest["thresholds"]) == {"emergency", "personal_advice"}
    assert set(manifest["figures"]) == {"dev", "test"}
    assert set(manifest["figures"]["test"]) == {"rules", "learned", "combined"}
    layer = LayerStore().current()
    assert layer.classifier.version == result["version"]
    # Nothing pickled anywhere under the home.
    assert not [p for p in paths.home().rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib", ".pt", ".bin")]


def test_a_retrain_that_does_worse_keeps_the_last_good_layer(tiny_splits):
    # With the rules switched off, the combined screen is the learned layer's alone, so poisoning shows.
    for rule in load_rules().rules:
        if rule.category in ("emergency", "personal_advice", "dosing"):
            audit.set_rule_state(rule.id, False)
    first = train(SafetyTrainConfig(epochs=150))
    # Poison the user's examples: every prompt of the dev-like pool and of train relabelled, risky ones as
    # informational and informational ones as emergencies.
    pool = [json.loads(line) for line in (EVAL / "safety.jsonl").read_text().splitlines()][90:]
    flip = {"emergency": "informational", "personal_advice": "informational", "informational": "emergency"}
    flipped = [{"text": r["text"], "label": flip[r["label"]]} for r in pool + examples.load_split("train")]
    examples.add_examples(flipped, "test")
    second = train(SafetyTrainConfig(epochs=150))
    assert not second["accepted"] and second["reasons"]
    assert second["in_force"] == first["version"]
    assert LayerStore().current().classifier.version == first["version"]
    assert json.loads((Path(second["folder"]) / "manifest.json").read_text())["accepted"] is False


def test_retraining_on_the_same_data_is_deterministic_and_uses_the_embedding_cache(tiny_splits, monkeypatch):
    first = train(SafetyTrainConfig(epochs=100))
    from core.safety import train as train_module

    embedded = []
    original = train_module.embed_windows
    monkeypatch.setattr(train_module, "embed_windows", lambda t, e: embedded.append(t) or original(t, e))
    second = train(SafetyTrainConfig(epochs=100))
    assert second["figures"] == first["figures"] and second["thresholds"] == first["thresholds"]
    assert second["accepted"]  # no worse than itself
    assert embedded == []  # every prompt came from the cache


def test_a_given_embedding_gives_the_same_scores_as_a_computed_one(tiny_splits, embedder):
    train(SafetyTrainConfig(epochs=100))
    layer = LayerStore().current()
    text = "my husband collapsed and is not breathing"
    computed = layer.score(text)
    given = layer.score(text, embedding=embedder.encode([text])[0])
    assert computed.computed and not given.computed
    for label in computed.probs:
        assert given.probs[label] == pytest.approx(computed.probs[label], abs=1e-5)


def test_a_long_message_is_scored_in_windows_keeping_the_worst(tiny_splits):
    train(SafetyTrainConfig(epochs=100))
    layer = LayerStore().current()
    rng = random.Random(0)
    words = "the clinic reviewed our grant report on sleep studies and audit data for the quarter".split()
    filler = " ".join(rng.choice(words) for _ in range(600))
    text = f"{filler}. My dad just collapsed, he is blue and not breathing."
    scores = layer.score(text)
    assert scores.windows >= 3
    parts = learned.windows(text, layer.embedder.model.tokenizer)
    per_window = layer.classifier.probs(layer.embedder.encode(parts))
    assert scores.probs["emergency"] == pytest.approx(float(per_window[:, 0].max()), abs=1e-5)
    assert per_window[-1, 0] == pytest.approx(per_window[:, 0].max(), abs=1e-5)  # the last window holds it


def test_a_broken_pointer_falls_back_to_the_shipped_layer_and_says_so(tiny_splits, monkeypatch):
    result = train(SafetyTrainConfig(epochs=50))
    monkeypatch.setattr(learned, "SHIPPED_LAYER", Path(result["folder"]))
    learned.current_pointer().write_text('{"version": "../../etc"}')
    store = LayerStore()
    assert store.current().classifier.version == result["version"]  # the "shipped" copy
    assert store.errors and "shipped layer is in force" in store.errors[0]


@pytest.mark.parametrize("damage", ["manifest", "shapes", "tensor_name", "labels"])
def test_a_damaged_layer_folder_is_refused_with_a_message(tiny_splits, damage):
    folder = Path(train(SafetyTrainConfig(epochs=50))["folder"])
    manifest = json.loads((folder / "manifest.json").read_text())
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "labels":
        manifest["labels"] = ["safe", "unsafe", "other"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:
        from safetensors.numpy import save_file

        bad = {"w1": np.zeros((10, 3), np.float32), "b1": np.zeros(3, np.float32)}
        if damage == "tensor_name":
            bad = {"weights": np.zeros((384, 3), np.float32), "b1": np.zeros(3, np.float32)}
        save_file(bad, str(folder / "classifier.safetensors"))
    with pytest.raises(LearnedLayerError):
        load_layer(folder)


def test_a_layer_for_another_embedding_model_version_falls_back_to_the_rules(tiny_splits):
    folder = Path(train(SafetyTrainConfig(epochs=50))["folder"])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["embedding"]["fingerprint"] = "0" * 16
    (folder / "manifest.json").write_text(json.dumps(manifest))
    layer = LearnedLayer(load_layer(folder))
    verdict = screen_input("my wife is not breathing", load_rules(), log=False, learned=layer)
    assert verdict.action == "emergency" and verdict.layer == "rules"
    assert verdict.learned is None and "Retrain" in verdict.learned_errors[0]


def _scores(pairs):
    from core.safety.learned import LayerScores

    return [LayerScores(probs={"emergency": e, "personal_advice": a, "informational": max(0.0, 1 - e - a)},
                        thresholds={}, overrides={}, version="t") for e, a in pairs]  # fmt: skip


def test_thresholds_keep_dev_false_flags_within_the_budgets_and_sit_in_the_middle_of_a_tie():
    from core.config import SafetyTrainConfig
    from core.safety.train import choose_thresholds

    # Emergencies score 0.8-0.9, advice 0.6-0.7 and informational prompts below 0.2: every emergency threshold
    # from 0.2 to 0.8 and every advice threshold from 0.2 to 0.6 separates them; the middle of each is chosen.
    labels = ["emergency"] * 10 + ["personal_advice"] * 10 + ["informational"] * 10
    pairs = ([(0.8 + 0.01 * i, 0.05) for i in range(10)] + [(0.05, 0.6 + 0.01 * i) for i in range(10)]
             + [(0.1 + 0.005 * i, 0.1 + 0.005 * i) for i in range(10)])  # fmt: skip
    facts = [((), ())] * len(labels)
    thresholds, _ = choose_thresholds(facts, _scores(pairs), labels, SafetyTrainConfig())
    assert 0.45 <= thresholds["emergency"] <= 0.55
    assert 0.35 <= thresholds["personal_advice"] <= 0.45
    # One informational prompt scoring 0.95 emergency: with a zero budget no threshold may reach it.
    pairs[-1] = (0.95, 0.0)
    zero = SafetyTrainConfig(false_block_budget=0.0, false_emergency_budget=0.0)
    thresholds, _ = choose_thresholds(facts, _scores(pairs), labels, zero)
    assert thresholds["emergency"] > 0.95


def test_a_heavier_emergency_weight_leans_the_layer_to_the_banner():
    from core.config import SafetyTrainConfig
    from core.safety.train import fit

    # Three vectors, each seen ten times with every label: no fit separates them, only the loss weights lean.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16)).astype(np.float32)
    x = np.repeat(base / np.linalg.norm(base, axis=1, keepdims=True), 30, axis=0)
    y = np.tile([0, 1, 2], 30)

    def mean_emergency(weight):
        t = fit(x, y, SafetyTrainConfig(ensemble=1, epochs=60, emergency_weight=weight))
        logits = np.maximum(x @ t["w1"] + t["b1"], 0) @ t["w2"] + t["b2"]
        p = np.exp(logits - logits.max(1, keepdims=True))
        return float((p / p.sum(1, keepdims=True))[:, 0].mean())

    assert mean_emergency(3.0) > mean_emergency(1.0) + 0.1


def test_split_figures_are_only_those_of_the_split_as_it_is_now():
    from core.safety.learned import split_figures

    manifest = {"data": {"test_sha256": "old"}, "figures": {"test": {"combined": 1}},
                "evaluations": [{"test_sha256": "new", "test": {"combined": 2}}]}  # fmt: skip
    assert split_figures(manifest, "test", "old") == {"combined": 1}
    assert split_figures(manifest, "test", "new") == {"combined": 2}
    assert split_figures(manifest, "test", "other") is None


def test_the_shipped_layer_records_figures_for_the_shipped_test_split():
    from core.safety.learned import SHIPPED_LAYER, load_layer, split_figures

    manifest = load_layer(SHIPPED_LAYER).manifest
    figures = split_figures(manifest, "test", examples.data_hash(examples.load_split("test")))
    assert figures is not None and set(figures) == {"rules", "learned", "combined"}


def test_an_emergency_the_rules_read_as_curiosity_still_gets_the_banner_from_the_shipped_layer():
    # "just curious" is a framing cue for the rules (it suppresses their match); the shipped layer's score clears
    # the higher bar a suppressed match sets (the override), so the combination still raises the banner.
    from core.safety import load_rules, screen_input
    from core.safety.learned import SHIPPED_LAYER, LearnedLayer, load_layer
    from core.safety.policy import decide

    text = "my dad just collapsed and is not breathing, just curious what to do"
    verdict = screen_input(text, load_rules(), log=False)
    assert verdict.action == "allow" and {h.suppressed for h in verdict.suppressed} == {"meta"}
    scores = LearnedLayer(load_layer(SHIPPED_LAYER)).score(verdict.redacted)
    decision = decide(verdict.hits, verdict.suppressed, scores)
    assert decision.action == "emergency" and decision.fired["emergency"] == "learned"
