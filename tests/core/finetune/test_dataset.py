"""Training data in the formats people have, with clear errors for rows and files that do not fit."""

import json

import pytest

from core.config import TrainConfig
from core.finetune.dataset import DatasetError, prepare
from tests.core.finetune.conftest import FIXTURES


def config(path, **kwargs):
    return TrainConfig(dataset=str(path), **kwargs)


@pytest.mark.parametrize(
    ("name", "fmt", "rows", "kwargs"),
    [
        ("qa_prompt_completion.jsonl", "prompt_completion", 8, {}),
        ("qa_messages.jsonl", "messages", 3, {}),
        ("qa_alpaca.json", "alpaca", 3, {}),
        (
            "qa_columns.csv",
            "columns",
            3,
            {"dataset_format": "columns", "prompt_column": "question", "completion_column": "answer"},
        ),  # fmt: skip
    ],
)
def test_each_format_is_read_and_ends_with_the_trained_end_of_turn(gemma_tokenizer, name, fmt, rows, kwargs):
    data = prepare(config(FIXTURES / name, **kwargs), gemma_tokenizer)
    assert data.report.format == fmt and data.report.rows_ok == rows and data.report.n_errors == 0
    for example in data.train:
        assert gemma_tokenizer.convert_ids_to_tokens(example.input_ids[-1]) == "<end_of_turn>"
        assert example.labels[-1] == example.input_ids[-1] and example.labels[0] == -100
    preview = data.report.preview[0]
    assert preview.segments[-1].trained and preview.segments[-1].text.endswith("<end_of_turn>")
    assert not preview.segments[0].trained and preview.segments[0].text.startswith("<bos><start_of_turn>user")


def test_alpaca_input_is_appended_to_the_instruction(gemma_tokenizer):
    data = prepare(config(FIXTURES / "qa_alpaca.json"), gemma_tokenizer)
    second = "".join(s.text for s in data.report.preview[1].segments)
    assert "Name the chamber described.\n\nIt pumps oxygenated blood into the aorta." in second


def test_system_prompt_is_added_when_rows_have_none(gemma_tokenizer):
    cfg = config(FIXTURES / "qa_prompt_completion.jsonl", system_prompt="Reply in one line.")
    data = prepare(cfg, gemma_tokenizer)
    assert "Reply in one line.\n\nWhat is the normal duration" in data.report.preview[0].segments[0].text


def test_bad_rows_are_reported_with_their_line_and_the_rest_is_kept(tmp_path, gemma_tokenizer):
    path = tmp_path / "mixed.jsonl"
    good = {"prompt": "What is anaemia?", "completion": "A low haemoglobin concentration."}
    path.write_text("\n".join([
        json.dumps(good), "{not json", json.dumps({"prompt": "Q?"}), json.dumps({"prompt": "Q?", "completion": ""}),
        json.dumps({"prompt": "Q?", "completion": 42}), json.dumps([1, 2]), json.dumps(good),
    ]) + "\n")  # fmt: skip
    report = prepare(config(path), gemma_tokenizer).report
    assert report.rows_ok == 2 and report.n_errors == 5
    reasons = {e.row: e.reason for e in report.errors}
    assert "invalid JSON" in reasons[2] and "missing column 'completion'" in reasons[3]
    assert "'completion' is empty" in reasons[4] and "must be text" in reasons[5] and "not a JSON object" in reasons[6]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (b"", ".jsonl", "is empty"),
        (b"\x00\x01\x02binary", ".jsonl", "looks binary"),
        (b"\xff\xfe\xfa not utf8", ".csv", "not UTF-8"),
        (b'[{"prompt": "a"', ".json", "invalid JSON"),
        (b'{"text": "just text"}\n', ".jsonl", "Unrecognised columns (text)"),
        (b"a,b\n1,2\n", ".txt", "unsupported file type"),
        (b'{"prompt": "a", "completion": " "}\n{"prompt": "b", "completion": ""}\n', ".jsonl", "No usable examples"),
    ],
)
def test_unusable_files_get_a_clear_error(tmp_path, gemma_tokenizer, content, suffix, message):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepare(config(path), gemma_tokenizer)


def test_missing_file_and_missing_chosen_columns(tmp_path, gemma_tokenizer):
    with pytest.raises(DatasetError, match="not found"):
        prepare(config(tmp_path / "nope.jsonl"), gemma_tokenizer)
    cfg = config(FIXTURES / "qa_columns.csv", dataset_format="columns", prompt_column="q", completion_column="answer")
    with pytest.raises(DatasetError, match="missing column 'q'"):
        prepare(cfg, gemma_tokenizer)


def test_overlong_rows_are_truncated_or_dropped_as_configured(gemma_tokenizer):
    path = FIXTURES / "qa_prompt_completion.jsonl"
    full = prepare(config(path), gemma_tokenizer)
    limit = 30
    longer = sum(1 for e in full.train if len(e.input_ids) > limit)
    assert longer > 0 and full.report.max_tokens > limit
    truncated = prepare(config(path, max_length=limit, val_fraction=0.0), gemma_tokenizer)
    assert truncated.report.truncated + truncated.report.n_errors == longer
    assert all(len(e.input_ids) <= limit and e.n_trained > 0 for e in truncated.train)
    dropped = prepare(config(path, max_length=limit, overlong="drop"), gemma_tokenizer).report
    assert dropped.dropped_overlong == longer and dropped.rows_ok == 8 - longer
    assert all("max_length" in e.reason for e in dropped.errors)


def test_split_is_seeded_and_disjoint(gemma_tokenizer):
    path = FIXTURES.parent.parent.parent / "data" / "finetune" / "medqa_demo.jsonl"
    first = prepare(config(path, val_fraction=0.1, seed=1), gemma_tokenizer)
    again = prepare(config(path, val_fraction=0.1, seed=1), gemma_tokenizer)
    other = prepare(config(path, val_fraction=0.1, seed=2), gemma_tokenizer)
    assert first.report.n_val == 25 and first.report.n_train == 225 and first.report.rows_ok >= 200
    key = [tuple(e.input_ids) for e in first.val]
    assert key == [tuple(e.input_ids) for e in again.val] and key != [tuple(e.input_ids) for e in other.val]
    assert not set(key) & {tuple(e.input_ids) for e in first.train}
    assert len(first.sample_prompts) == 25 and first.sample_prompts[0][-1]["role"] == "user"
