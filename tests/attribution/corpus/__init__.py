"""Tests of ``attribution.corpus``: corpus runs, local and on Ray."""
