"""The roots of a graph's routes as users type them, read the same way by the app and the command line.

:func:`parse_root_tokens` reads the text (``-1``, ``0,3,-1``, ``all``); ``resolve_root_tokens`` (in
:mod:`attribution.contributions.graph`) then checks the indices against the text's tokens. Model-free and
light (no torch): the command line parses its arguments with it before it imports what runs the model.
"""

from __future__ import annotations

from attribution.errors import InvalidInputError
from attribution.validation import quoted

RootTokens = int | list[int] | str
#: The roots a user leaves to the model's kind: its prediction (see :func:`default_roots`).
DEFAULT_ROOT = "auto"


def default_roots(model_kind: str) -> RootTokens:
    """The routes drawn by default: from the last token of a prompt (what the model predicts next), from every
    target token of a translation (its last token only predicts the end of the sentence, ``</s>``)."""
    return "all" if model_kind == "seq2seq" else -1


def parse_root_tokens(value: str | int | None) -> RootTokens:
    """The roots of the routes: ``-1`` → -1 (last token), ``0,3,-1`` → [0, 3, -1], ``all`` → "all".

    ``None`` or an empty value means the last token. Indices are checked against the text's length
    later, by :func:`attribution.contributions.resolve_root_tokens`.
    """
    text = str(value if value is not None else "").strip() or "-1"
    if text == "all":
        return "all"
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise InvalidInputError(
            f"The root token must be a token index (-1 = the last token), a comma list of indices such as 0,3,-1, "
            f"or 'all', not {quoted(text)}."
        ) from None
    return indices[0] if len(indices) == 1 else indices
