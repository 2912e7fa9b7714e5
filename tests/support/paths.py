"""Where the repository is, for tests that read its files or run its commands from any folder depth."""

from pathlib import Path

#: The checkout's root (``tests/support/paths.py`` is two folders below it).
REPO = Path(__file__).resolve().parents[2]
