"""MedGemma Workbench: the Streamlit entry point (navigation only; pages live in components/)."""

import streamlit as st

from components import PAGES

st.set_page_config(page_title="MedGemma Workbench", page_icon=":material/ecg_heart:", layout="wide")
pages = [
    st.Page(p.render, title=p.title, icon=p.icon, url_path=p.url_path, default=(i == 0)) for i, p in enumerate(PAGES)
]
navigation = st.navigation(pages, position="sidebar")
st.sidebar.caption(
    "MedGemma Workbench is a research and demo tool. **Not a medical device**; it does not give medical advice."
)
navigation.run()
