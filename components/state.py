"""Names of the few session_state keys the pages share (small, JSON-able values only)."""

MODELS_PREPARE_JOB = "models.prepare_job"  # id of the embedded-model preparation job started from the Models page
MODELS_NOTICE = "models.notice"  # (kind, text) shown once after an action on the Models page
JOBS_NOTICE = "jobs.notice"
DOCS_INDEX = "documents.index"  # the index chosen on the Documents page (the selectbox's key)
DOCS_SELECT_NEXT = "documents.select_next"  # an index to select on the next run (after an ingest)
DOCS_INGEST_JOB = "documents.ingest_job"  # id of the ingest job the Documents page follows
DOCS_NOTICE = "documents.notice"
CHAT_CONVERSATION = "chat.conversation"  # the open conversation's id (the selectbox's key)
CHAT_NEXT = "chat.next"  # a conversation to open on the next run (after "New")
FINETUNE_RUN = "finetune.run"  # the run shown on the Fine-tune page (the selectbox's key); a started run is selected
FINETUNE_DATASET = "finetune.dataset"  # the dataset file chosen on the Fine-tune page (set by an upload too)
FINETUNE_NOTICE = "finetune.notice"
EVAL_RUN = "eval.run"  # the evaluation run shown on the Evaluate page (the selectbox's key)
EVAL_SET = "eval.set"  # the eval set chosen on the Evaluate page (set by an upload too)
EVAL_NOTICE = "eval.notice"
EVAL_DRILL = "eval.drill"  # the question open in the drill-down
