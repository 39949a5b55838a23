"""Ingest: every source (HTTP, files, databases, HTTP APIs) feeds one pipeline (``pipeline.py``)."""
