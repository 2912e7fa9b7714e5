"""Tests of ``space.cli``: the ``attribution-explorer`` command line."""
