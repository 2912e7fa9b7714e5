"""Where the repository is, for tests that read its files or run its commands from any folder depth."""

import os
from pathlib import Path

#: The checkout's root (``tests/support/paths.py`` is two folders below it).
REPO = Path(__file__).resolve().parents[2]
#: Where browser tests leave their screenshots (gitignored): look at them after a run.
SCREENSHOTS = Path(os.environ.get("ATTRIBUTION_EXPLORER_SCREENSHOTS", REPO / "tests" / "artifacts" / "screenshots"))
