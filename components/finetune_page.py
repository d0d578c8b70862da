"""FinetunePage: a LoRA form → TrainConfig → a dataset check or a training run, and the runs with live progress."""

from pathlib import Path

import streamlit as st

from components import resources, state
from components.base import Page
from components.finetune_widgets import dataset_report, run_panel
from components.widgets import config_number, show_notice
from core import paths
from core.config import GEMMA_TARGET_MODULES, ConfigError, TrainConfig
from core.errors import WorkbenchError
from core.finetune import runs
from core.finetune.dataset import prepare
from core.finetune.model import cuda_available
from core.models import registry
from core.uploads import save_upload

SUFFIXES = ("jsonl", "ndjson", "json", "csv", "tsv")
UPLOAD_KEY = "finetune.upload"
CPU_NOTE = (
    "No CUDA GPU here, so these are off: 4-bit/8-bit quantisation uses bitsandbytes, which needs CUDA (on CPU the "
    "270M model trains unquantised in fp32), and gradient checkpointing only trades speed for GPU memory."
)


class FinetunePage(Page):
    title = "Fine-tune"
    icon = ":material/tune:"
    url_path = "finetune"

    def render(self) -> None:
        st.title("Fine-tune")
        st.caption(
            "Train a LoRA adapter on a base model from question/answer examples. Only the answers are learned; "
            "training runs as a background job that keeps going when you leave or refresh this page."
        )
        show_notice(state.FINETUNE_NOTICE)
        st.subheader("New run")
        config = self._form()
        left, right, _ = st.columns([1, 1, 3])
        check = left.button("Check dataset", icon=":material/fact_check:", disabled=config is None)
        start = right.button("Start training", type="primary", icon=":material/play_arrow:", disabled=config is None)
        if check:
            self._check(config)
        if start:
            self._start(config)
        st.divider()
        self._runs()

    def _form(self) -> TrainConfig | None:
        h, default = TrainConfig.help, TrainConfig()
        models = [m.name for m in registry.list_models(role="finetune_base") if m.status == "ready"]
        if not models:
            st.warning("No fine-tuning base model is ready: prepare the embedded models on the Models page, or add "
                       "a transformers model with role finetune_base.")  # fmt: skip
            return None
        cols = st.columns(2)
        base = cols[0].selectbox("Base model", models, index=models.index(default.base_model)
                                 if default.base_model in models else 0, help=h("base_model"))  # fmt: skip
        run_name = cols[1].text_input("Run name", placeholder="base model · dataset file", help=h("run_name"))
        datasets = _datasets()
        if st.session_state.get(state.FINETUNE_DATASET) not in datasets:
            st.session_state[state.FINETUNE_DATASET] = default.dataset if default.dataset in datasets else datasets[0]
        cols = st.columns(2)
        dataset = cols[0].selectbox("Dataset", datasets, format_func=_dataset_label, help=h("dataset"),
                                    key=state.FINETUNE_DATASET)  # fmt: skip
        cols[1].file_uploader("…or upload a JSONL, JSON or CSV file", type=list(SUFFIXES), key=UPLOAD_KEY,
                              on_change=_save_upload)  # fmt: skip
        cols = st.columns(3)
        fmt = cols[0].selectbox("Dataset format", _choices("dataset_format"), help=h("dataset_format"))
        prompt_column = answer_column = None
        if fmt == "columns":
            prompt_column = cols[1].text_input("Prompt column", help=h("prompt_column")).strip() or None
            answer_column = cols[2].text_input("Answer column", help=h("completion_column")).strip() or None
        system_prompt = st.text_area("System prompt", height=68, help=h("system_prompt"))
        with st.expander("LoRA"):
            cols = st.columns(3)
            lora_r = config_number(cols[0], TrainConfig, "lora_r", "Rank (r)")
            lora_alpha = config_number(cols[1], TrainConfig, "lora_alpha", "Alpha (empty: twice the rank)")
            lora_dropout = config_number(cols[2], TrainConfig, "lora_dropout", "Dropout")
            targets = st.multiselect("Target modules", GEMMA_TARGET_MODULES, default.target_modules,
                                     help=h("target_modules"))  # fmt: skip
        with st.expander("Training"):
            cols = st.columns(4)
            epochs = config_number(cols[0], TrainConfig, "num_train_epochs", "Epochs")
            max_steps = config_number(cols[1], TrainConfig, "max_steps", "Max steps (0: epochs)")
            lr = config_number(cols[2], TrainConfig, "learning_rate", "Learning rate", format="%.1e")
            batch = config_number(cols[3], TrainConfig, "batch_size", "Batch size")
            cols = st.columns(4)
            accumulation = config_number(cols[0], TrainConfig, "gradient_accumulation_steps", "Gradient accumulation")
            max_length = config_number(cols[1], TrainConfig, "max_length", "Max length (tokens)")
            overlong = cols[2].selectbox("Longer examples", _choices("overlong"), help=h("overlong"))
            val_fraction = config_number(cols[3], TrainConfig, "val_fraction", "Validation fraction")
            cols = st.columns(4)
            eval_steps = config_number(cols[0], TrainConfig, "eval_steps", "Validate every N steps")
            save_steps = config_number(cols[1], TrainConfig, "save_steps", "Checkpoint every N steps")
            n_samples = config_number(cols[2], TrainConfig, "n_samples", "Side-by-side samples")
            seed = config_number(cols[3], TrainConfig, "seed", "Seed")
            sample_prompts = st.text_area("Sample prompts (one per line; empty: validation prompts)", height=68,
                                          help=h("sample_prompts"))  # fmt: skip
        cuda = cuda_available()
        with st.expander("Precision and memory" + ("" if cuda else " (CPU: fp32, no quantisation)")):
            cols = st.columns(3)
            precision = cols[0].selectbox("Precision", _choices("precision"), help=h("precision"))
            quantization = cols[1].selectbox("Quantization", _choices("quantization"), help=h("quantization"),
                                             disabled=not cuda)  # fmt: skip
            checkpointing = cols[2].checkbox("Gradient checkpointing", False, help=h("gradient_checkpointing"),
                                             disabled=not cuda)  # fmt: skip
            if not cuda:
                st.caption(CPU_NOTE)
        try:
            return TrainConfig(
                base_model=base, dataset=dataset, dataset_format=fmt, prompt_column=prompt_column,
                completion_column=answer_column, system_prompt=system_prompt.strip(), val_fraction=float(val_fraction),
                max_length=int(max_length), overlong=overlong, lora_r=int(lora_r),
                lora_alpha=None if lora_alpha is None else int(lora_alpha), lora_dropout=float(lora_dropout),
                target_modules=list(targets), learning_rate=float(lr), num_train_epochs=float(epochs),
                max_steps=int(max_steps), batch_size=int(batch), gradient_accumulation_steps=int(accumulation),
                seed=int(seed), eval_steps=int(eval_steps), save_steps=int(save_steps), precision=precision,
                quantization=quantization if cuda else "none", gradient_checkpointing=bool(checkpointing and cuda),
                sample_prompts=[p.strip() for p in sample_prompts.splitlines() if p.strip()],
                n_samples=int(n_samples), run_name=run_name.strip(),
            )  # fmt: skip
        except ConfigError as exc:
            st.error(str(exc))
            return None

    def _check(self, config: TrainConfig) -> None:
        try:
            with st.spinner("Reading and tokenizing the dataset…"):
                report = prepare(config, resources.training_tokenizer(config.base_model)).report
        except WorkbenchError as exc:
            st.error(str(exc))
            return
        dataset_report(report)

    def _start(self, config: TrainConfig) -> None:
        try:
            run = runs.create_run(config)
            runs.start(run.id)
        except WorkbenchError as exc:
            st.error(str(exc))
            return
        st.session_state[state.FINETUNE_RUN] = run.id  # the runs selectbox is drawn below: not yet in this run
        st.session_state[state.FINETUNE_NOTICE] = ("success", f"Started run {run.name} ({run.id}); follow it below.")
        st.rerun()

    def _runs(self) -> None:
        st.subheader("Runs")
        listed = runs.list_runs()
        if not listed:
            st.info("No runs yet. Check the dataset, then start training above.")
            return
        labels = {r.id: f"{r.name} · {r.state}" for r in listed}
        if st.session_state.get(state.FINETUNE_RUN) not in labels:  # first visit, or the run was deleted
            st.session_state[state.FINETUNE_RUN] = listed[0].id
        run_id = st.selectbox("Run", list(labels), format_func=labels.get, key=state.FINETUNE_RUN)
        run_panel(run_id)


def _upload_dir() -> Path:
    folder = paths.uploads_dir() / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _datasets() -> list[str]:
    # Shipped sets as repository-relative paths (what config.json records), uploads as absolute paths.
    shipped = sorted(paths.shipped_data_dir().glob("finetune/*"))
    uploaded = sorted(_upload_dir().iterdir())
    found = [str(p.relative_to(paths.REPO_ROOT)) for p in shipped] + [str(p) for p in uploaded]
    return [f for f in found if f.rsplit(".", 1)[-1].lower() in SUFFIXES] or [TrainConfig().dataset]


def _choices(name: str) -> tuple:
    return TrainConfig.spec(name).choices


def _dataset_label(path: str) -> str:
    return f"uploads/{Path(path).name}" if Path(path).is_absolute() else path


def _save_upload() -> None:
    upload = st.session_state.get(UPLOAD_KEY)
    if upload is not None:
        # Never overwrites an earlier upload of the same name: "data (2).jsonl" instead.
        target = save_upload(_upload_dir(), upload.name, upload.getvalue())
        st.session_state[state.FINETUNE_DATASET] = str(target)
