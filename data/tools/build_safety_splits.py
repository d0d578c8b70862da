r"""Build the learned safety layer's train / dev / test splits from writers' files, split by writer.

Each input file holds one writer's labelled prompts (JSONL: text, label, tags, note). The split a writer's rows go
to is given on the command line, so no writer is in two splits. Near-duplicates across splits are removed from the
side that is not frozen: from train when they resemble a dev or test prompt, from dev when they resemble a test
prompt. Two prompts are near-duplicates when their MiniLM embeddings have cosine >= 0.92 or their character
5-gram sets overlap by Jaccard >= 0.7 (after folding, lower case, whitespace collapsed).

    python data/tools/build_safety_splits.py --train shipped=data/eval/safety.jsonl a=/tmp/a.jsonl \\
        --dev c=/tmp/c.jsonl --test t1=/tmp/t1.jsonl t2=/tmp/t2.jsonl

A row that already has an id starting with its writer's name (a split file given back as input, one writer's
rows picked out with ``WRITER=FILE``: only that writer's rows are read) keeps it; other rows are numbered.

Writes core/safety/examples/{train,dev,test}.jsonl and prints one JSON report.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

COSINE, JACCARD = 0.92, 0.7


def grams(text: str) -> set[str]:
    """Character 5-grams of a text."""
    return {text[i : i + 5] for i in range(max(1, len(text) - 4))}


def near(keys_a, grams_a, vecs_a, keys_b, grams_b, vecs_b) -> list[int]:
    """Indices into a of rows that are near-duplicates of some row of b."""
    sims = vecs_a @ vecs_b.T  # (A, B)
    out = []
    for i in range(len(keys_a)):
        if sims[i].max(initial=-1.0) >= COSINE or keys_a[i] in set(keys_b):
            out.append(i)
            continue
        g = grams_a[i]
        if any(len(g & h) / max(1, len(g | h)) >= JACCARD for h in grams_b):
            out.append(i)
    return out


def main() -> None:
    """Read the writers' files, split, de-duplicate, write the splits, print the report."""
    from core.safety.examples import EXAMPLES_DIR, check_row, key
    from core.safety.learned import shared_embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for split in ("train", "dev", "test"):
        parser.add_argument(f"--{split}", nargs="+", required=True, metavar="WRITER=FILE")
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {}
    writers: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        rows[split] = []
        for spec in getattr(args, split):
            writer, _, path = spec.partition("=")
            if writer in writers:
                raise SystemExit(f"writer {writer} given twice")
            writers[writer] = split
            seen = set()
            for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                raw = json.loads(line)
                if raw.get("writer", writer) != writer and str(raw.get("id", "")).startswith(raw["writer"]):
                    continue  # a split file: another writer's row
                row = check_row(raw, f"{path}:{n}")
                k = key(row["text"])
                if k in seen:
                    continue
                seen.add(k)
                kept = str(raw.get("id", ""))
                rows[split].append(
                    {
                        "id": kept if kept.startswith(f"{writer}-") else f"{writer}-{len(seen):04d}",
                        "text": row["text"],
                        "label": row["label"],
                        "writer": writer,
                        "tags": row.get("tags", []),
                        "note": row.get("note", ""),
                    }
                )
    embedder = shared_embedder("all-minilm-l6-v2")
    keys = {s: [key(r["text"]) for r in rows[s]] for s in rows}
    gram_sets = {s: [grams(k) for k in keys[s]] for s in rows}
    vecs = {s: embedder.encode(keys[s]) for s in rows}
    removed = {}
    for side, frozen in (("dev", ["test"]), ("train", ["dev", "test"])):
        drop = set()
        for other in frozen:
            drop |= set(near(keys[side], gram_sets[side], vecs[side], keys[other], gram_sets[other], vecs[other]))
        removed[side] = [rows[side][i]["text"] for i in sorted(drop)]
        keep = [i for i in range(len(rows[side])) if i not in drop]
        rows[side] = [rows[side][i] for i in keep]
        keys[side] = [keys[side][i] for i in keep]
        gram_sets[side] = [gram_sets[side][i] for i in keep]
        vecs[side] = vecs[side][keep] if keep else np.zeros((0, vecs[side].shape[1]), dtype=np.float32)
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    report = {"removed_near_duplicates": {s: len(v) for s, v in removed.items()}, "splits": {}}
    for split, items in rows.items():
        (EXAMPLES_DIR / f"{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8"
        )
        counts = {}
        for r in items:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        report["splits"][split] = {"n": len(items), "labels": counts,
                                   "writers": sorted({r["writer"] for r in items})}  # fmt: skip
    report["removed_examples"] = {s: v[:10] for s, v in removed.items()}
    print(json.dumps(report, indent=1, ensure_ascii=False))  # noqa: T201


if __name__ == "__main__":
    main()
