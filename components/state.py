"""Names of the few session_state keys the pages share (small, JSON-able values only)."""

MODELS_PREPARE_JOB = "models.prepare_job"  # id of the embedded-model preparation job started from the Models page
MODELS_NOTICE = "models.notice"  # (kind, text) shown once after an action on the Models page
JOBS_NOTICE = "jobs.notice"
