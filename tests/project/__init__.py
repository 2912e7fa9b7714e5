"""Whole-project checks: the docs and README run, the wheel, the import graph, mutation config, conventions."""
