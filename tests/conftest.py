"""Test-wide setup: nothing in the test suite may reach the network.

HF_HUB_OFFLINE must be set before huggingface_hub is first imported, so it is set here, at
conftest import time, rather than in a fixture.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
