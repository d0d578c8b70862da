"""Ship a trained safety layer: copy it into core/safety/learned/ with the shipped splits' embedding cache.

    python data/tools/ship_safety_layer.py [VERSION]

VERSION is a folder under ``<home>/safety/learned/`` (by default the one ``current.json`` names). The layer must
have passed its gate and have been trained on shipped splits alone (no user examples). When the shipped dev and
test splits are no longer the ones it was trained beside (a used-up test split retired and a new one written,
and the gate kept this layer), its figures on the splits as they are now are added to the manifest's
``evaluations``, so that what the repository shows describes the files in it. The cache holds each shipped
prompt's window vectors, so a user's first retrain only embeds their own examples. Prints one JSON line.
"""

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    """Check the layer, copy it and write the cache."""
    from safetensors.numpy import save

    from core.fileio import atomic_write_bytes, read_json
    from core.safety import examples, train
    from core.safety.learned import (
        EMBEDDER,
        SHIPPED_LAYER,
        current_pointer,
        load_layer,
        save_layer,
        shared_embedder,
        user_layers_dir,
    )
    from core.safety.store import RuleStore

    version = sys.argv[1] if len(sys.argv) > 1 else read_json(current_pointer())["version"]
    layer = load_layer(user_layers_dir() / version)
    manifest = layer.manifest
    splits = {s: examples.load_split(s) for s in ("train", "dev", "test")}
    data = manifest["data"]
    hashes = {s: examples.split_hash(s) for s in splits}
    rewritten = [s for s in ("dev", "test") if data.get(f"{s}_sha256") != hashes[s]]
    problems = []
    if data.get("user"):
        problems.append(f"trained with {data['user']} user examples")
    if not manifest.get("accepted"):
        problems.append("did not pass its gate")
    if problems:
        raise SystemExit(f"{version}: " + "; ".join(problems))
    embedder = shared_embedder(EMBEDDER)
    # The cache holds what a retrain reads (``train.read_splits``), so a first retrain embeds nothing shipped.
    read = train.read_splits(splits["train"], splits["dev"], splits["test"], RuleStore().current(), embedder,
                             lambda *a, **k: None)  # fmt: skip
    if rewritten:
        manifest = _evaluated(manifest, splits, hashes, read, embedder, layer)
    cache = {examples.data_hash([{"text": t, "label": "informational"}])[:32]: np.ascontiguousarray(v)
             for _, texts, vectors in read.values() for t, v in zip(texts, vectors, strict=True)}  # fmt: skip
    for old in SHIPPED_LAYER.glob("embedding-cache-*.safetensors"):
        old.unlink()
    from safetensors.numpy import load_file

    save_layer(SHIPPED_LAYER, load_file(str(user_layers_dir() / version / "classifier.safetensors")), manifest)
    cache_path = SHIPPED_LAYER / f"embedding-cache-{embedder.fingerprint}.safetensors"
    atomic_write_bytes(cache_path, save(cache))
    print(json.dumps({"version": version, "prompts": len(cache), "cache": str(cache_path.relative_to(REPO)),  # noqa: T201
                      "cache_bytes": cache_path.stat().st_size, "evaluated_on_rewritten": rewritten}))  # fmt: skip


def _evaluated(manifest, splits, hashes, read, embedder, layer) -> dict:
    """The manifest with the layer's figures on the dev and test splits as they are now, under ``evaluations``."""
    from core.runfolder import now_iso
    from core.safety import train
    from core.safety.learned import LearnedLayer

    scored = LearnedLayer(layer, embedder)
    entry = {"at": now_iso(), "dev_sha256": hashes["dev"], "test_sha256": hashes["test"],
             "note": "scored after training, on dev and test splits rewritten since"}  # fmt: skip
    for split in ("dev", "test"):
        facts, _, vectors = read[split]
        entry[split] = train.layer_figures(scored, splits[split], facts, vectors)
    kept = [e for e in manifest.get("evaluations", []) if e.get("test_sha256") != hashes["test"]]
    return {**manifest, "evaluations": [*kept, entry]}


if __name__ == "__main__":
    main()
