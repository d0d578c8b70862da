"""Fine-tune page through AppTest on the real embedded Gemma 3 270M: the form, the dataset check, a tiny run."""

import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from components import state
from core import paths
from core.chat import store as chats
from core.config import GEMMA_TARGET_MODULES, ConfigError, TrainConfig
from core.evaluate import registry as evaluations
from core.finetune import runs
from core.finetune.model import cuda_available
from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "finetune"


def _app():
    from components.finetune_page import FinetunePage

    FinetunePage().render()


def _chat_app():
    from components.chat_page import ChatPage

    ChatPage().render()


def _widget(widgets, label):
    return next(w for w in widgets if w.label == label)


def _text(at):
    return "\n".join(str(m.value) for m in [*at.markdown, *at.caption])


def _dataset(name: str, text: str | None = None) -> str:
    """Put a dataset where the page's uploader saves files and return the path the Dataset selectbox offers."""
    folder = paths.uploads_dir() / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    if text is None:
        shutil.copy(FIXTURES / name, folder / name)
    else:
        (folder / name).write_text(text)
    return str(folder / name)


def test_form_has_every_setting_with_help_and_explains_cpu_limits():
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert not at.exception
    assert _widget(at.selectbox, "Base model").value == "gemma3-270m"
    assert at.selectbox(key=state.FINETUNE_DATASET).value == "data/finetune/medqa_demo.jsonl"
    assert _widget(at.multiselect, "Target modules").value == list(GEMMA_TARGET_MODULES)
    helps = {
        "Rank (r)": "lora_r",
        "Learning rate": "learning_rate",
        "Max steps (0: epochs)": "max_steps",
        "Validation fraction": "val_fraction",
        "Checkpoint every N steps": "save_steps",
    }
    for label, name in helps.items():
        assert _widget(at.number_input, label).help == TrainConfig.help(name)
    quantization = _widget(at.selectbox, "Quantization")
    checkpointing = _widget(at.checkbox, "Gradient checkpointing")
    if cuda_available():
        assert not quantization.disabled and not checkpointing.disabled
    else:
        assert quantization.disabled and checkpointing.disabled
        assert "bitsandbytes" in _text(at) and "fp32" in _text(at)
    assert "No runs yet" in at.info[0].value
    # The columns format asks for its two columns, and says so until both are given.
    _widget(at.selectbox, "Dataset format").set_value("columns").run()
    assert _widget(at.text_input, "Prompt column") and _widget(at.text_input, "Answer column")
    assert "needs prompt_column and completion_column" in at.error[0].value
    assert _widget(at.button, "Start training").disabled


def test_check_dataset_previews_examples_with_the_trained_answers_highlighted():
    path = _dataset("qa_prompt_completion.jsonl")
    at = AppTest.from_function(_app, default_timeout=120).run()
    at.selectbox(key=state.FINETUNE_DATASET).set_value(path).run()
    _widget(at.button, "Check dataset").click().run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Usable rows"] == "8 of 8" and metrics["Train / validation"] == "8 / 0"
    previews = [m.value for m in at.markdown if m.value.startswith("<div")]
    assert len(previews) == 3
    first = previews[0]
    trained = '<span class="ft-trained" title="trained" style="'
    assert "The PR interval normally lasts 120 to 200 milliseconds in adults." in first.split(trained)[1]
    masked = first.split(trained)[0]  # the prompt and the chat template come first, dimmed
    assert 'class="ft-masked"' in masked and "&lt;start_of_turn&gt;user" in masked
    assert "What is the normal duration of the PR interval" in masked and "\n" not in first
    assert "Row 1: " in _text(at)


def test_number_widgets_take_their_range_default_and_help_from_the_config_fields():
    at = AppTest.from_function(_app, default_timeout=60).run()
    rank = _widget(at.number_input, "Rank (r)")
    assert rank.min == 1 and rank.max == 512 and rank.value == 8  # no 0, which TrainConfig refuses
    fields = {"Alpha (empty: twice the rank)": "lora_alpha", "Dropout": "lora_dropout", "Epochs": "num_train_epochs",
              "Max steps (0: epochs)": "max_steps", "Learning rate": "learning_rate", "Batch size": "batch_size",
              "Gradient accumulation": "gradient_accumulation_steps", "Max length (tokens)": "max_length",
              "Validation fraction": "val_fraction", "Validate every N steps": "eval_steps",
              "Checkpoint every N steps": "save_steps", "Side-by-side samples": "n_samples",
              "Seed": "seed"}  # fmt: skip
    for label, name in fields.items():
        spec, widget = TrainConfig.spec(name), _widget(at.number_input, label)
        assert (widget.min, widget.max, widget.value) == (spec.low, spec.high, spec.default), label
        assert widget.help == spec.help
    assert _widget(at.selectbox, "Precision").options == list(TrainConfig.spec("precision").choices)


def test_bad_datasets_and_a_rank_below_one_show_clear_errors():
    empty, csv = _dataset("empty.jsonl", ""), _dataset("qa_columns.csv")
    at = AppTest.from_function(_app, default_timeout=120).run()
    at.selectbox(key=state.FINETUNE_DATASET).set_value(empty).run()
    _widget(at.button, "Check dataset").click().run()
    assert "empty.jsonl is empty" in at.error[0].value

    at.selectbox(key=state.FINETUNE_DATASET).set_value(csv).run()
    _widget(at.selectbox, "Dataset format").set_value("columns").run()
    _widget(at.text_input, "Prompt column").input("prompt_text")
    _widget(at.text_input, "Answer column").input("answer").run()
    _widget(at.button, "Check dataset").click().run()
    assert "No usable examples in qa_columns.csv" in at.error[0].value
    assert "missing column 'prompt_text'" in at.error[0].value

    _widget(at.number_input, "Rank (r)").set_value(0).run()  # below the widget's minimum: not taken
    assert _widget(at.number_input, "Rank (r)").value == 8 and not at.exception
    with pytest.raises(ConfigError, match="LoRA rank must be at least 1"):  # what the config says to the CLI
        TrainConfig(lora_r=0)
    _widget(at.selectbox, "Dataset format").set_value("columns").run()
    _widget(at.text_input, "Prompt column").input("").run()
    assert "needs prompt_column and completion_column" in at.error[0].value
    assert _widget(at.button, "Start training").disabled and _widget(at.button, "Check dataset").disabled


def _wait(run_id: str, timeout_s: float = 180) -> runs.Run:
    deadline = time.time() + timeout_s
    while runs.get_run(run_id).state in ("created", "running") and time.time() < deadline:
        time.sleep(0.5)
    return runs.get_run(run_id)


@pytest.mark.slow
def test_train_a_tiny_run_see_it_finished_resume_it_and_chat_with_its_adapter():
    path = _dataset("qa_prompt_completion.jsonl")
    at = AppTest.from_function(_app, default_timeout=120).run()
    at.selectbox(key=state.FINETUNE_DATASET).set_value(path).run()
    settings = {"Max steps (0: epochs)": 2, "Batch size": 2, "Side-by-side samples": 0, "Validation fraction": 0.0,
                "Checkpoint every N steps": 1}  # fmt: skip
    for label, value in settings.items():
        _widget(at.number_input, label).set_value(value)
    _widget(at.text_input, "Run name").input("tiny")
    _widget(at.button, "Start training").click().run()
    assert not at.exception
    run_id = at.session_state[state.FINETUNE_RUN]
    assert "Started run tiny" in at.success[0].value
    run = runs.get_run(run_id)
    assert run.config["max_steps"] == 2 and run.config["dataset"] == path and run.config["n_samples"] == 0
    finished = _wait(run_id)
    assert finished.state == "finished", finished.error

    at = AppTest.from_function(_app, default_timeout=120).run()  # a fresh session (a page refresh) reattaches
    assert not at.exception
    assert at.selectbox(key=state.FINETUNE_RUN).value == run_id
    text = _text(at)
    assert "**tiny** :green-badge[finished]" in text
    assert any(c.value == finished.adapter for c in at.code)
    assert len(at.get("plotly_chart")) == 2
    assert list(at.dataframe[0].value["step"]) == [1, 2]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Step"] == "2 / 2" and metrics["Training time"] != "—" and metrics["Loss"] != "—"
    assert any(b.label == "Download config.json" for b in at.get("download_button"))

    # Evaluate against the base: this run held out no validation split, so the page says to pick an eval set.
    _widget(at.button, "Evaluate against the base").click().run()
    assert "held out no validation examples" in at.error[0].value
    at.selectbox(key=f"finetune.eval_set.{run_id}").set_value("data/eval/demo_qa.jsonl")
    at.number_input(key=f"finetune.eval_limit.{run_id}").set_value(1)
    _widget(at.button, "Evaluate against the base").click().run()
    assert not at.exception and any("Started evaluation" in m.value for m in at.success)
    (evaluation,) = evaluations.list_runs()
    assert evaluations.wait(evaluation.id, timeout_s=300).status == "complete"
    report = evaluations.load_report(evaluation.id)
    assert report["system_order"] == ["base (gemma3-270m)", "fine-tuned (tiny)"]
    assert all(s["n_rows"] == 1 for s in report["systems"].values())

    # The chat page offers the adapter for the transformers base only.
    chat = AppTest.from_function(_chat_app, default_timeout=60).run()
    (conversation,) = chats.list_conversations()
    adapter = chat.selectbox(key=f"chat.adapter.{conversation.id}")
    assert adapter.disabled  # the default chat model is a GGUF
    chat.selectbox(key=f"chat.model.{conversation.id}").set_value("gemma3-270m").run()
    adapter = chat.selectbox(key=f"chat.adapter.{conversation.id}")
    assert not adapter.disabled and f"tiny · {run_id}" in adapter.options
    adapter.set_value(finished.adapter).run()
    assert chats.get_conversation(conversation.id).settings["adapter"] == finished.adapter

    at.selectbox(key=f"finetune.checkpoint.{run_id}").set_value(1)
    _widget(at.button, "Resume from checkpoint").click().run()
    assert not at.exception
    resumed = runs.get_run(run_id)
    assert len(resumed.job_ids) == 2
    assert _wait(run_id).state == "finished"
    assert [m["step"] for m in runs.read_metrics(run_id)] == [1, 2]
