"""Tests of the library package ``attribution`` (top-level modules here, sub-packages in sub-folders)."""
