"""Chat benchmark: decode speed and time to first token of the chat path vs raw llama.cpp, and answer quality.

Everything runs through the real code (core.chat.answer over an index ingested from data/corpus); the baseline is
`llama_cpp.Llama.create_completion` on the very `Llama` object the chat path uses, in the same process, with the
same prompt and settings (greedy, top_p 0.95, seed 0, the same stop list and max tokens). Both embedded chat models
are measured: SmolLM2-135M-Instruct (chat template) and Gemma 3 270M base (plain completion prompt).

- Decode tokens/s (per model, on SPEED_QUESTIONS questions of data/eval/retrieval.jsonl, ours and raw alternating
  which goes first, after one warm-up of each): ours is `answer_stream(...)` with its own timings (`tokens_per_s`:
  tokens of the answer over the time after the first piece); raw streams `create_completion` on `answer.prompt`
  and counts tokens the same way. Our path stops early when a sentence repeats, so rates (not totals) are
  compared. Medians over questions; target ratio ours / raw >= 0.95.
- Time to first token of a grounded question (top 5 sources): ours is `timings["ttft_ms"]`, the time to the first
  piece the user is *shown*, measured from the start of `answer_stream` (input screening, query embedding,
  retrieval, passage screening, prompt assembly, prompt evaluation, and the output screen, which holds text back
  to whole sentences); raw is from the `create_completion` call to its first non-empty piece (`raw_median`) and
  to the first moment its text holds a whole sentence by the same rule (`raw_first_sentence_median`). The
  overhead is the median over questions of ours - raw's first sentence (the same text shown); target <= 150 ms.
  `first_token_overhead_median` compares first generated tokens, and `hold_back_median` is what showing only
  whole, screened sentences costs (raw's first sentence - raw's first token). llama.cpp keeps the previous
  prompt's KV cache and reuses the longest common token prefix, so `Llama.reset()` (n_tokens = 0: no prefix
  reuse, the next eval clears the KV cache from position 0) runs before every timed call of both sides: each
  evaluates its whole prompt. The overhead's parts are timed separately on the same questions (`overhead_parts_ms`).
- Answer quality with `ask(...)` on data/eval/retrieval.jsonl (all questions, or every other one when the speed
  runs predict more than QUALITY_BUDGET_S per model; `n` and `questions` say which; the speed questions belong
  to that subset and their answers are reused): share of answers citing the
  gold source (written or attributed citation), share containing the gold answer string, SQuAD token-F1 to the
  gold answer (citation labels removed first), share of claim sentences supported, dropped labels, share of
  questions the index covered, share of citations whose label the model wrote; for context, the share of
  questions whose gold source was among the 5 sources shown (the ceiling of cites_gold) and the answers' length.
- The default chat model: the higher mean token-F1 (tie: higher cites_gold share).

Prints one JSON object on stdout; progress goes to stderr.
"""

import json
import os
import re
import shutil
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CORPUS = REPO / "data" / "corpus"
EVAL = REPO / "data" / "eval" / "retrieval.jsonl"
EMBEDDING_MODEL = "all-minilm-l6-v2"
MODELS = ("smollm2-135m-instruct", "gemma3-270m-gguf")
INDEX = "demo"
TOP_K = 5
MAX_NEW_TOKENS = 64
SPEED_QUESTIONS = 8
QUALITY_BUDGET_S = 240.0
LABELS = re.compile(r"\[[^\[\]]{0,60}\bS\s*\d{1,3}[^\[\]]{0,60}\]", re.IGNORECASE)


def log(message: str) -> None:
    print(f"[bench-chat] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return round(float(statistics.median(values)), 1) if values else 0.0


# ---------------------------------------------------------------------------------------------- speed and TTFT


def run_ours(question: str, config, gen, embedder, state):
    """One turn through answer_stream from a clean llama.cpp state; returns the final Answer."""
    from core.chat.answer import answer_stream

    with gen.lock:
        gen.llm.reset()  # no KV prefix reuse from the previous call: the whole prompt is evaluated
    final = None
    for event in answer_stream(question, config, gen, embedder, state):
        if event["type"] == "final":
            final = event["answer"]
    return final


def run_raw(prompt: str, gen) -> dict:
    """The baseline: create_completion on the same Llama, same prompt and settings, from a clean state.

    Besides its first token, the time at which its text first holds a whole sentence (the boundary the chat path
    shows at, by the same rule) is recorded: the like-for-like baseline of the chat path's first shown piece.
    """
    from core.chat.answer import _SENTENCE_END, COMPLETION_STOPS

    stops = None if gen.has_chat_template else list(COMPLETION_STOPS)
    pieces, first, sentence = [], None, None
    with gen.lock:
        gen.llm.reset()
        start = time.perf_counter()
        stream = gen.llm.create_completion(
            prompt, max_tokens=MAX_NEW_TOKENS, temperature=0.0, top_p=0.95, stop=stops, seed=0, stream=True
        )
        for piece in stream:
            text = piece["choices"][0]["text"]
            if text:
                if first is None:
                    first = time.perf_counter()
                pieces.append(text)
                if sentence is None and _SENTENCE_END.search("".join(pieces)):
                    sentence = time.perf_counter()
        end = time.perf_counter()
    raw = "".join(pieces).strip()
    new_tokens = gen.count_tokens(raw) if raw else 0
    return {
        "ttft_ms": round(((first or end) - start) * 1000, 1),
        "first_sentence_ms": round(((sentence or end) - start) * 1000, 1),
        "tokens_per_s": round(new_tokens / (end - (first or start)), 1) if new_tokens > 1 else 0.0,
        "new_tokens": new_tokens,
        "text": raw,
    }


def overhead_parts(question: str, config, gen, embedder, state) -> tuple[dict, str]:
    """Time the steps answer_stream takes before generation, one by one, and return the prompt they assemble."""
    from core.chat.answer import build_prompt
    from core.rag.retrieve import retrieve
    from core.safety import screen_input, screen_output

    parts = {}
    t0 = time.perf_counter()
    asked = screen_input(question).redacted
    t1 = time.perf_counter()
    vector = embedder.encode([asked])[0]
    t2 = time.perf_counter()
    hits = retrieve(state, asked, vector, k=config.top_k)
    t3 = time.perf_counter()
    passages = screen_output("", {"passages": [h.text for h in hits]}, log=False)
    cleaned = list(passages.redacted_passages) or [h.text for h in hits]
    t4 = time.perf_counter()
    sources = [{"label": f"S{n}", "text": text} for n, text in enumerate(cleaned, start=1)]
    prompt, _ = build_prompt(gen, asked, sources)
    t5 = time.perf_counter()
    parts["screen_input"] = (t1 - t0) * 1000
    parts["embed_query"] = (t2 - t1) * 1000
    parts["retrieve"] = (t3 - t2) * 1000
    parts["screen_passages"] = (t4 - t3) * 1000
    parts["build_prompt"] = (t5 - t4) * 1000
    parts["total"] = (t5 - t0) * 1000
    return parts, prompt


def bench_speed(name: str, gen, embedder, state, questions: list[str], answers: dict) -> dict:
    """Decode rate and TTFT of ours vs raw on the same prompts, alternating which side goes first.

    The chat path's answers are put in ``answers`` (question -> Answer) for the quality measures.
    """
    from core.config import ChatConfig

    config = ChatConfig(model=name, index=INDEX, top_k=TOP_K, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    warm = run_ours(questions[0], config, gen, embedder, state)
    run_raw(warm.prompt, gen)
    ours, raw, parts, totals, prompt_tokens, mismatches = [], [], [], [], [], 0
    for i, question in enumerate(questions):
        timed, prompt = overhead_parts(question, config, gen, embedder, state)
        parts.append(timed)
        if i % 2:  # raw first, on the prompt the chat path assembles (checked against answer.prompt below)
            r = run_raw(prompt, gen)
            a = run_ours(question, config, gen, embedder, state)
            if a.prompt != prompt:
                mismatches += 1
                r = run_raw(a.prompt, gen)
        else:
            a = run_ours(question, config, gen, embedder, state)
            r = run_raw(a.prompt, gen)
        answers[question] = a
        if not a.covered or "ttft_ms" not in a.timings:
            log(f"{name} q{i}: not covered or no tokens; skipped")
            continue
        ours.append(a.timings)
        raw.append(r)
        totals.append(a.timings.get("total_ms", 0.0))
        prompt_tokens.append(len(gen.llm.tokenize(a.prompt.encode("utf-8"), add_bos=True, special=True)))
        log(
            f"{name} q{i}: prompt {prompt_tokens[-1]} tok | ours ttft {a.timings['ttft_ms']} ms, "
            f"{a.timings['tokens_per_s']} tok/s ({a.timings['new_tokens']} tok) | raw ttft {r['ttft_ms']} ms, "
            f"{r['tokens_per_s']} tok/s ({r['new_tokens']} tok) | before generation {timed['total']:.1f} ms"
        )
    rate_ours = median([t["tokens_per_s"] for t in ours if t["new_tokens"] > 1])
    rate_raw = median([r["tokens_per_s"] for r in raw if r["new_tokens"] > 1])
    return {
        "decode_tokens_per_s": {
            "ours": rate_ours,
            "raw": rate_raw,
            "ratio": round(rate_ours / rate_raw, 3) if rate_raw else None,
            "target_ratio": 0.95,
            "new_tokens_ours_median": median([t["new_tokens"] for t in ours]),
            "new_tokens_raw_median": median([r["new_tokens"] for r in raw]),
        },
        "ttft_ms": {
            # ours: the first piece shown (a whole, screened sentence); raw: its first token, and its first sentence
            "ours_median": median([t["ttft_ms"] for t in ours]),
            "raw_median": median([r["ttft_ms"] for r in raw]),
            "raw_first_sentence_median": median([r["first_sentence_ms"] for r in raw]),
            # the target: ours shows the same first sentence within 150 ms of raw llama.cpp producing it
            "overhead_median": median([t["ttft_ms"] - r["first_sentence_ms"] for t, r in zip(ours, raw, strict=True)]),
            "overhead_per_question": [
                round(t["ttft_ms"] - r["first_sentence_ms"], 1) for t, r in zip(ours, raw, strict=True)
            ],
            "target_overhead_ms": 150,
            # before generation: ours' first generated token vs raw's first token (the pipeline's own overhead)
            "first_token_overhead_median": median(
                [t["first_token_ms"] - r["ttft_ms"] for t, r in zip(ours, raw, strict=True)]
            ),
            # what holding text back to whole screened sentences costs the user before anything shows
            "hold_back_median": median([r["first_sentence_ms"] - r["ttft_ms"] for r in raw]),
            "overhead_parts_ms": {k: median([p[k] for p in parts]) for k in parts[0]} if parts else {},
            "retrieval_ms_median": median([t.get("retrieval_ms", 0.0) for t in ours]),
        },
        "n_questions": len(ours),
        "prompt_tokens_median": median(prompt_tokens),
        "prompt_mismatches": mismatches,
        "ours_total_ms_median": median(totals),
    }


# -------------------------------------------------------------------------------------------------------- quality


def squad_normalize(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = squad_normalize(prediction).split(), squad_normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return float(pred == ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def is_gold(ref: dict, item: dict) -> bool:
    """Whether a citation or source is the item's gold source (and page, when the item names one)."""
    gold_page = item.get("gold_page")
    return ref["source"] == item["gold_source"] and (gold_page is None or ref["page"] == gold_page)


def bench_quality(name: str, gen, embedder, state, items: list[dict], answers: dict) -> dict:
    """ask() on each item (reusing the speed runs' answers to the same questions); measures averaged."""
    from core.chat.answer import ask
    from core.config import ChatConfig

    config = ChatConfig(model=name, index=INDEX, top_k=TOP_K, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    cites_gold = contains = f1 = covered = dropped = written = n_citations = gold_shown = 0
    supported, lengths, examples = [], [], []
    start = time.perf_counter()
    for i, item in enumerate(items):
        answer = answers.get(item["question"]) or ask(item["question"], config, gen, embedder, state)
        cites_gold += any(is_gold(c, item) for c in answer.citations)
        gold_shown += any(is_gold(s, item) for s in answer.sources)
        lengths.append(answer.timings.get("new_tokens", 0))
        text = " ".join(LABELS.sub(" ", answer.answer).split())
        contains += " ".join(item["answer"].lower().split()) in text.lower()
        f1 += token_f1(text, item["answer"])
        claims = len({c["sentence_index"] for c in answer.citations}) + len(answer.unsupported_sentences)
        if claims:
            supported.append(1.0 - len(answer.unsupported_sentences) / claims)
        dropped += len(answer.dropped_labels)
        covered += answer.covered
        written += sum(not c["attributed"] for c in answer.citations)
        n_citations += len(answer.citations)
        if len(examples) < 3:
            examples.append({"question": item["question"], "gold": item["answer"], "answer": answer.answer})
        if (i + 1) % 10 == 0:
            log(f"{name} quality {i + 1}/{len(items)} ({time.perf_counter() - start:.0f}s)")
    n = len(items)
    return {
        "n": n,
        "cites_gold": round(cites_gold / n, 4),
        "answer_contains_gold": round(contains / n, 4),
        "token_f1": round(f1 / n, 4),
        "supported_sentence_share": round(statistics.mean(supported), 4) if supported else 0.0,
        "answers_with_claims": len(supported),
        "dropped_labels": dropped,
        "covered": round(covered / n, 4),
        "written_labels_share": round(written / n_citations, 4) if n_citations else 0.0,
        "citations": n_citations,
        "gold_in_sources": round(gold_shown / n, 4),
        "answer_tokens_median": median(lengths),
        "seconds": round(time.perf_counter() - start, 1),
        "examples": examples,
    }


# ----------------------------------------------------------------------------------------------------------- main


def main():
    os.environ.setdefault("WORKBENCH_EMBEDDED_DIR", str(REPO / "models" / "embedded"))
    home = tempfile.mkdtemp(prefix="wb-bench-chat-")
    os.environ["WORKBENCH_HOME"] = home
    import llama_cpp
    import torch

    from core.config import IngestConfig
    from core.llm.backends import load_generator
    from core.rag import index as store
    from core.rag.embed import Embedder
    from core.rag.ingest import ingest

    load_start = os.getloadavg()
    started = time.perf_counter()
    try:
        t0 = time.perf_counter()
        embedder = Embedder(EMBEDDING_MODEL)
        embedder.encode(["warm-up sentence about the QT interval"])
        report = ingest(IngestConfig(index=INDEX, paths=[str(CORPUS)]), embedder=embedder)
        if report.errors:
            log(f"ingest errors: {[f.source for f in report.errors]}")
        state = store.load(INDEX)
        log(f"embedder + ingest of {report.total_chunks} chunks in {time.perf_counter() - t0:.1f}s")

        items = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]
        # The fixed subset is every other question; the speed questions are evenly spaced within it, so that
        # their answers count for quality too.
        subset = items[::2]
        speed_questions = [it["question"] for it in subset[:: len(subset) // SPEED_QUESTIONS][:SPEED_QUESTIONS]]

        gens, results, answers = {}, {}, {}
        for name in MODELS:
            t0 = time.perf_counter()
            gens[name] = load_generator(name)
            answers[name] = {}
            log(f"{name}: loaded in {time.perf_counter() - t0:.1f}s (chat template: {gens[name].has_chat_template})")
            t0 = time.perf_counter()
            results[name] = bench_speed(name, gens[name], embedder, state, speed_questions, answers[name])
            results[name]["speed_seconds"] = round(time.perf_counter() - t0, 1)
            log(f"{name} speed: {json.dumps(results[name])}")

        # One question set for both models, so that their quality is compared on the same questions: all of
        # them when the slower model's median turn predicts at most QUALITY_BUDGET_S, else the fixed subset.
        predicted = max(r["ours_total_ms_median"] for r in results.values()) / 1000 * len(items)
        chosen_set = items if predicted <= QUALITY_BUDGET_S else subset
        selection = "all" if chosen_set is items else "every other"
        log(f"quality: all {len(items)} questions predicted to take {predicted:.0f}s per model; using {selection}")
        for name in MODELS:
            results[name]["quality"] = bench_quality(name, gens[name], embedder, state, chosen_set, answers[name])
            results[name]["quality"]["questions"] = selection
            summary = {k: v for k, v in results[name]["quality"].items() if k != "examples"}
            log(f"{name} quality: {json.dumps(summary)}")
    finally:
        if not os.environ.get("WORKBENCH_BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)

    def rank(name: str) -> tuple[float, float]:
        return results[name]["quality"]["token_f1"], results[name]["quality"]["cites_gold"]

    chosen = max(MODELS, key=rank)
    other = next(m for m in MODELS if m != chosen)
    tie = rank(chosen)[0] == rank(other)[0]
    reason = (
        f"{chosen} has the higher mean token-F1 to the gold answers ({rank(chosen)[0]} vs {rank(other)[0]} for "
        f"{other}) on {results[chosen]['quality']['n']} questions"
        if not tie
        else f"token-F1 tied ({rank(chosen)[0]}); {chosen} cites the gold source more often "
        f"({rank(chosen)[1]} vs {rank(other)[1]})"
    )
    print(json.dumps({
        "models": results,
        "chosen_default": chosen,
        "reason": reason,
        "settings": {"top_k": TOP_K, "max_new_tokens": MAX_NEW_TOKENS, "temperature": 0.0, "top_p": 0.95, "seed": 0,
                     "speed_questions": len(speed_questions), "index_chunks": len(state.chunks)},
        "machine": {
            "cpus": os.cpu_count(),
            "llama_threads": gens[MODELS[0]].llm.n_threads if hasattr(gens[MODELS[0]].llm, "n_threads") else None,
            "torch_threads": torch.get_num_threads(),
            "llama_cpp_python": llama_cpp.__version__,
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
    }))  # fmt: skip


if __name__ == "__main__":
    main()
