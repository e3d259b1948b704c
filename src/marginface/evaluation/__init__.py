"""Evaluation: a model or baseline on a protocol -> results.json, per-run figures and diagnostics."""
