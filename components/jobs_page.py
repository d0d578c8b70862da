"""JobsPage: every background job (training, export, ingest, model preparation) with live progress and cancel."""

import streamlit as st

from components.base import Page
from components.widgets import job_card
from core import jobs


class JobsPage(Page):
    title = "Jobs"
    icon = ":material/pending_actions:"
    url_path = "jobs"

    def render(self) -> None:
        st.title("Jobs")
        st.caption(
            "Long work runs as separate processes: it keeps going when you close or refresh the tab, and this "
            "page reattaches to it. Finished jobs are read back from disk."
        )
        self._job_list()

    @st.fragment(run_every="2s")
    def _job_list(self) -> None:
        listed = jobs.list_jobs(limit=50)
        if not listed:
            st.info("No jobs yet. Preparing models, ingesting documents, training and exporting start jobs here.")
            return
        running = sum(s.state == "running" for s in listed)
        st.markdown(f"**{len(listed)} jobs** · {running} running")
        for status in listed:
            job_card(status, key_prefix="jobs")
