"""Safety benchmark: screening latency and adversarial inputs, ours against a naive regex screener, plus eval metrics.

- Typical messages: p50 / p95 of screen_input over ~500 prompts (both labelled sets, plus pairs of them joined).
- Adversarial inputs: several 100 KB kinds (one letter, negated repeats, digits, @, quotes, one long word, rule
  words); we report the worst case. The issue's bound is 50 ms per 100 KB and 1 ms per typical message.
- Baseline, same run: the same rule patterns with their bounded windows made unbounded ({0,60} -> *), no keyword
  prefilter, no hit cap, joined as one case-insensitive alternation per category: what a first regex screener
  looks like. It is quadratic on some inputs, so the comparison uses 20 KB inputs (and 10 KB to show growth).
- Learned layer (the one in force), same run: screen latency with the embedding given (the chat's path) and with
  it computed, against the rules alone on the same texts; a long message (the chat's 8,000-character limit, scored
  in windows) computed. Bounds from the issue: p95 <= 5 ms given, <= 30 ms computed.
- Eval: rules alone, learned alone and combined on the dev split and the two labelled sets; the blind test split's
  figures are read from the layer's manifest (it is scored only when a layer is accepted, never here).

Prints one JSON object.
"""

import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def adversarial(size):
    words = "should i take my pills chest pain no my dad is not breathing and help "
    kinds = {
        "one_letter": "a",
        "negated_repeats": "chest pain no ",
        "digits": "1",
        "digits_and_spaces": "1 ",
        "at_signs": "a@",
        "quotes": "'a \"b ",
        "one_long_word": "chestpainshortnessofbreath",
        "phone_numbers": "555-0147 ",
        "rule_words": words,
    }
    out = {k: (v * (size // len(v) + 1))[:size] for k, v in kinds.items()}
    # The same rule words in a random order: dense, but not a repetition of one window.
    rng = random.Random(0)
    vocab = words.split()
    shuffled = []
    while sum(len(w) + 1 for w in shuffled) < size:
        shuffled.append(rng.choice(vocab))
    out["rule_words_shuffled"] = " ".join(shuffled)[:size]
    return out


def timed_ms(fn, text, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def naive_screener(ruleset):
    # Unbounded versions of our windows, per category, no prefilter: re.finditer over everything.
    unbounded = [(re.compile(r"\{0,\d+\}"), "*"), (re.compile(r"\{1,\d+\}"), "+")]
    by_category = {}
    for rule in ruleset.rules:
        if rule.regex is None:
            continue
        pattern = rule.regex.pattern
        if rule.near_regex is not None:
            pattern = f"(?:{pattern}).*?(?:{rule.near_regex.pattern})|(?:{rule.near_regex.pattern}).*?(?:{pattern})"
        for bounded, replacement in unbounded:
            pattern = bounded.sub(replacement, pattern)
        by_category.setdefault(rule.category, []).append(f"(?:{pattern})")
    compiled = {c: re.compile("|".join(p), re.IGNORECASE) for c, p in by_category.items()}

    def screen(text):
        return {c: [m.span() for m in regex.finditer(text)] for c, regex in compiled.items()}

    return screen


def percentiles(samples):
    samples = sorted(samples)
    return {"p50_ms": round(statistics.median(samples), 3), "p95_ms": round(samples[int(len(samples) * 0.95)], 3),
            "n": len(samples)}  # fmt: skip


def learned_figures(ruleset, texts):
    from core.safety import screen_input
    from core.safety.learned import LayerStore

    layer = LayerStore().current()
    embedder = layer.embedder
    vectors = embedder.encode(texts)  # what the chat has already computed for retrieval
    for text, vector in zip(texts[:30], vectors[:30], strict=True):
        screen_input(text, ruleset, log=False, learned=layer, embedding=vector)
        screen_input(text, ruleset, log=False, learned=layer)
    rules_only, given, computed = [], [], []
    for text, vector in zip(texts, vectors, strict=True):
        rules_only.append(timed_ms(lambda t: screen_input(t, ruleset, log=False), text, repeat=2))
        given.append(timed_ms(lambda t, v=vector: screen_input(t, ruleset, log=False, learned=layer, embedding=v),
                              text, repeat=2))  # fmt: skip
        computed.append(timed_ms(lambda t: screen_input(t, ruleset, log=False, learned=layer), text, repeat=2))
    out = {"version": layer.classifier.version, "rules_only": percentiles(rules_only),
           "embedding_given": percentiles(given), "embedding_computed": percentiles(computed)}  # fmt: skip
    out["given_p95_over_rules_p95"] = round(out["embedding_given"]["p95_ms"] / out["rules_only"]["p95_ms"], 2)
    out["bounds_ms"] = {"given_p95": 5, "computed_p95": 30}
    # A long message at the chat's limit: the emergency is in its last sentence, beyond MiniLM's 256 word pieces.
    filler = " ".join(texts[i % len(texts)] for i in range(400))
    long_text = (filler[:7900] + " My dad just collapsed and he is not breathing.")[-8000:]
    verdict = screen_input(long_text, ruleset, log=False, learned=layer)
    out["long_message"] = {"chars": len(long_text), "windows": verdict.learned.windows,
                           "ms": round(timed_ms(lambda t: screen_input(t, ruleset, log=False, learned=layer),
                                                long_text), 1),
                           "emergency_score": round(verdict.learned.probs["emergency"], 3),
                           "action": verdict.action}  # fmt: skip
    out["_layer"] = layer
    return out


def main():
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-")
    from core.safety import load_rules, screen_input
    from core.safety.evaluate import evaluate

    ruleset = load_rules()
    ours = lambda text: screen_input(text, ruleset, log=False)  # noqa: E731
    naive = naive_screener(ruleset)

    sets = [REPO / "data" / "eval" / "safety.jsonl", REPO / "data" / "eval" / "safety_holdout.jsonl"]
    texts = [json.loads(line)["text"] for path in sets for line in path.read_text(encoding="utf-8").splitlines()]
    texts += [f"{a} {b}" for a, b in zip(texts[::3], texts[1::3], strict=False)][: max(0, 500 - len(texts))]
    for text in texts[:50]:
        ours(text)  # warm the regex and keyword caches
    typical = {}
    for name, fn in (("ours", ours), ("baseline", naive)):
        samples = sorted(timed_ms(fn, t, repeat=2) for t in texts)
        typical[name] = {"p50_ms": round(statistics.median(samples), 3),
                         "p95_ms": round(samples[int(len(samples) * 0.95)], 3), "n": len(samples)}  # fmt: skip

    big = {k: round(timed_ms(ours, v), 1) for k, v in adversarial(100_000).items()}
    compare = {}
    for size in (10_000, 20_000):
        for kind, text in adversarial(size).items():
            entry = compare.setdefault(kind, {})
            entry[f"ours_{size // 1000}kb_ms"] = round(timed_ms(ours, text), 2)
            entry[f"baseline_{size // 1000}kb_ms"] = round(timed_ms(naive, text, repeat=1), 2)
    for entry in compare.values():
        entry["baseline_over_ours_20kb"] = round(entry["baseline_20kb_ms"] / max(entry["ours_20kb_ms"], 1e-3), 1)

    learned = learned_figures(ruleset, texts)
    fields = ("emergency_recall", "personal_advice_recall", "false_block_only_rate", "false_emergency_rate",
              "accuracy")  # fmt: skip
    from core.safety.examples import split_path

    layer = learned.pop("_layer")
    metrics = {}
    for path in [split_path("dev"), *sets]:
        report = evaluate(path, ruleset, learned=layer)
        metrics[path.name] = {"n": report.n, **{name: {k: report.layers[name][k] for k in fields}
                                                for name in report.layers}}  # fmt: skip
    from core.safety import examples
    from core.safety.learned import split_figures

    metrics["test.jsonl (manifest)"] = split_figures(layer.classifier.manifest, "test", examples.split_hash("test"))

    print(json.dumps({
        "typical_message_ms": typical,
        "adversarial_100kb_ms": {"ours": big, "ours_worst": max(big.values()), "bound_ms": 50},
        "adversarial_compare": compare,
        "learned": learned,
        "eval": metrics,
        "rules": len(ruleset.rules),
        "cpu_count": os.cpu_count(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
