"""Tests of ``attribution.contributions``: decomposition and contribution graphs."""
