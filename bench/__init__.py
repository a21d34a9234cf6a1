"""Benchmarks of llmkit against the official `openai` package and a no-SDK floor.

Run them with `make bench` (or `.venv/bin/python bench/run.py`); see bench/README.md.
"""
