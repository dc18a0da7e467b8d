"""Evaluation: variants and their runners, timing, peak memory, and the report."""
