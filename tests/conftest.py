"""Test-wide setup: nothing in the test suite may reach the network.

HF_HUB_OFFLINE must be set before huggingface_hub is first imported, so it is set here, at
conftest import time, rather than in a fixture.
"""

import os

import pytest
import torch

#: Real-Hub tests (marker ``hub``) run only when asked for; only then does the suite leave offline mode.
HUB_TESTS = os.environ.get("ATTRIBUTION_EXPLORER_HUB_TESTS") == "1"
if not HUB_TESTS:
    os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# The test models are tiny: on a 2-core machine shared with Chromium and the Gradio server, torch's
# thread pool costs far more in synchronisation than it gains (measured ~60x slower forwards).
torch.set_num_threads(1)

#: Fixtures every test may use: ``browser`` and ``new_page`` (Debian's Chromium through Playwright).
pytest_plugins = ["tests.support.browser"]

#: CI sets this: a browser test that skips (e.g. Chromium missing) is then a failure, not a pass.
REQUIRE_BROWSER = os.environ.get("ATTRIBUTION_EXPLORER_REQUIRE_BROWSER") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_BROWSER and report.skipped and item.get_closest_marker("browser") is not None:
        report.outcome = "failed"
        report.longrepr = f"browser test skipped although ATTRIBUTION_EXPLORER_REQUIRE_BROWSER=1: {report.longrepr}"


def pytest_collection_modifyitems(config, items):
    """Skip the real-Hub tests unless ATTRIBUTION_EXPLORER_HUB_TESTS=1, whatever ``-m`` expression was given.

    A marker expression in ``addopts`` would not do: a user's ``-m "not slow"`` replaces it.
    """
    if HUB_TESTS:
        return
    skip = pytest.mark.skip(reason="needs the real Hugging Face Hub: set ATTRIBUTION_EXPLORER_HUB_TESTS=1")
    for item in items:
        if item.get_closest_marker("hub") is not None:
            item.add_marker(skip)
