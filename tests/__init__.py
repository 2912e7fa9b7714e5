"""The test suite: one folder per package (attribution, exporters, space), project-wide checks, shared support."""
