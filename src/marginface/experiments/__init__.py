"""Experiments that train or time models for the report: the toy models, the head-scaling measurements."""
