"""RAG fixtures: a tiny three-document corpus."""

import pytest

DOCS = {
    "flutter.md": (
        "# Atrial flutter\n\nAtrial flutter is a macro-reentrant atrial tachycardia. The ECG shows sawtooth flutter "
        "waves, best seen in the inferior leads II, III and aVF. With 2:1 block the ventricular rate is about 150 "
        "beats per minute."
    ),
    "statins.txt": (
        "Statins inhibit HMG-CoA reductase and lower LDL cholesterol. Muscle aches are the most commonly reported "
        "adverse effect; liver enzymes may rise."
    ),
    "potassium.md": (
        "Hyperkalaemia changes the ECG: peaked T waves come first, then PR prolongation, flattened P waves and a "
        "widened QRS complex."
    ),
}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
