"""Tests of ``attribution.anatomy``: the model's named sites and hooks."""
