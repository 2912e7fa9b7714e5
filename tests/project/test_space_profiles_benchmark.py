"""``benchmarks/space_profiles.py`` without timing: every profile's table of estimates, as the docs page shows it."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support.paths import REPO


@pytest.mark.slow  # builds each profile's stand-ins and estimates: ~20 s quiet, more on the shared machine
def test_the_estimate_tables_list_every_profiles_runs_with_their_verdict(capsys):
    spec = importlib.util.spec_from_file_location("space_profiles", REPO / "benchmarks" / "space_profiles.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--measure", "--models", "gpt2"]) == 0
    out = capsys.readouterr().out
    assert out.count("**cpu-basic**") == out.count("**zero-gpu**") == out.count("**gpu**") == 1
    # cpu-basic generates 12 tokens: saliency spends a gradient, a prediction and a generation pass on each.
    assert "| gpt2 | saliency | 36 | 200 | within cap |" in out
    assert "| gpt2 | integrated_gradients | 680 | 3,000 | within cap |" in out  # zero-gpu: 20 x (32 + 1 + 1)
    assert "over cap" not in out and "load average" in out
