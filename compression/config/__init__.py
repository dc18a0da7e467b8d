"""Configs: the frozen, validated step configs (`steps.py`) and the pipeline file
(`pipeline_file.py`, `sections.py`) that builds them."""
