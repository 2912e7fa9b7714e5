"""Errors the library raises for problems a user can fix.

Every error a person can cause (a bad model id, empty text, a method an architecture can't run)
is an :class:`AttributionExplorerError`. The CLI prints its message on one line and exits non-zero;
the Space shows it as a ``gr.Error``. Anything else escaping the library is a bug.
"""

from __future__ import annotations


class AttributionExplorerError(Exception):
    """Base class: the message is meant for the user and is complete on its own."""


class InvalidInputError(AttributionExplorerError, ValueError):
    """The text, target, method name or an option given by the user is not usable."""


class ModelLoadError(AttributionExplorerError):
    """A model could not be loaded: unknown id, not a model folder, unsupported model type."""


class HubUnreachableError(ModelLoadError):
    """The Hugging Face Hub could not be reached (offline, or ``HF_HUB_OFFLINE=1``)."""


class UnsupportedError(AttributionExplorerError):
    """The request is valid but this method / architecture combination is not supported."""


class ResultFormatError(InvalidInputError):
    """A result JSON is unreadable: too large, not JSON, or not of its schema (the message names the field)."""


class CostLimitError(InvalidInputError):
    """A request would cost more model passes than this deployment allows (estimated before running)."""


class BudgetExceededError(AttributionExplorerError):
    """A run took longer than its time budget and was stopped; the model was left as it was."""
