"""Shared test support (models, tokenizers, data, servers, the browser), imported as ``tests.support.<module>``."""
