"""The real-Hub tests stay off offline whatever marker expression a user passes (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.paths import REPO

pytest_plugins = ["pytester"]

CONFTEST = REPO.joinpath("tests", "conftest.py").read_text(encoding="utf-8")
TESTS = """
import pytest

@pytest.mark.hub
def test_reaches_the_hub():
    raise AssertionError("a hub test ran offline")

@pytest.mark.slow
def test_slow():
    pass

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.delenv("ATTRIBUTION_EXPLORER_HUB_TESTS", raising=False)
    pytester.makeconftest(CONFTEST)
    # Third-party plugins off in the inner runs: hypothesis's alone costs seconds per session.
    pytester.makeini(
        "[pytest]\n"
        "addopts = -ra --strict-markers -p no:cacheprovider -p no:hypothesispytest -p no:benchmark -p no:typeguard\n"
        "markers =\n    hub: h\n    slow: s\n    browser: b\n"
    )
    pytester.makepyfile(test_suite=TESTS)
    return pytester


@pytest.mark.parametrize(
    ("options", "outcomes"),
    [
        ([], {"passed": 2, "skipped": 1}),
        (["-m", "not slow and not browser"], {"passed": 1, "skipped": 1, "deselected": 1}),
        (["-m", "hub"], {"skipped": 1, "deselected": 2}),
        (["-m", "hub or not hub"], {"passed": 2, "skipped": 1}),
    ],
)
def test_hub_tests_are_skipped_offline_whatever_the_marker_expression(suite, options, outcomes):
    result = suite.runpytest_inprocess(*options)
    result.assert_outcomes(**outcomes)
    assert "set ATTRIBUTION_EXPLORER_HUB_TESTS=1" in result.stdout.str()


def test_hub_tests_run_when_asked_for(suite, monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_EXPLORER_HUB_TESTS", "1")
    suite.runpytest_inprocess("-m", "hub").assert_outcomes(failed=1, deselected=2)  # it ran (and failed: offline)
