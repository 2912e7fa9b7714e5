"""Tests of ``attribution.interventions``: ablation, patching, sweeps."""
