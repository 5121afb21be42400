"""The Streamlit dashboard: per-page reads of the store, archive and Memory, and the views."""
