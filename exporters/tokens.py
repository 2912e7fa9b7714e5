"""Tokens as a reader should see them: the text they stand for, with spaces and invisible characters marked.

Results keep every token exactly as its tokenizer spells it (``ĠMary``, ``▁Mary``, ``Ċ``,
``<0x0A>``); figures, tables and labels show :func:`display_token` instead, and hovers add the raw
spelling. The spelling style comes from the result's provenance (``tokenizer_style``), or is
guessed from the tokens for results saved before it was recorded. No tokenizer is needed, so a
saved JSON displays the same way anywhere. This module imports neither Bokeh nor torch.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from attribution.results import TokenizerStyle
from attribution.tokenizer_style import BYTE_OF_CHAR as BYTE_OF_CHAR  # re-exported: where callers find them
from attribution.tokenizer_style import guess_style as guess_style
from attribution.tokenizer_style import result_style as result_style
from attribution.tokenizer_style import token_text

#: Shown before a token that starts with a space (" Mary" → "·Mary"): subtle, but never lost.
LEADING_SPACE = "·"
#: A space that is the whole token, or one of several at its edges.
VISIBLE_SPACE = "␣"
_VISIBLE = {"\n": "↵", "\t": "⇥", "\r": "␍", "\u00a0": "⍽"}


def _visible_char(char: str) -> str:
    if char in _VISIBLE:
        return _VISIBLE[char]
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return f"<U+{ord(char):04X}>"
    return char


def page_text(text: str) -> str:
    """Any text from a result or a user as a page shows it: characters that would not show, or would change the
    direction of what follows, marked as tokens mark them.

    The one function for every text that reaches a page (titles, provenance lines, figure titles, table cells,
    labels): a right-to-left override (U+202E) or another bidi control (U+202A–U+202E, U+2066–U+2069, U+200E/F,
    U+061C: all format characters) shows as ``<U+202E>`` instead of reversing the text after it, a line break as
    ``↵``. Tokens get the same marks through :func:`display_token`.
    """
    text = str(text)
    return text if text.isprintable() else "".join(_visible_char(c) for c in text)  # printable: nothing to mark


def make_visible(text: str) -> str:
    """Mark what would not show: one leading space as ``·``, other edge spaces as ``␣``, controls as symbols."""
    if not text:
        return "∅"
    core = text.strip(" ")
    if not core:
        return VISIBLE_SPACE * len(text)
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" "))
    prefix = LEADING_SPACE if lead == 1 else VISIBLE_SPACE * lead
    return prefix + page_text(core) + VISIBLE_SPACE * trail


def display_token(token: str, style: TokenizerStyle = "plain") -> str:
    """A raw token as shown on axes, in tables and menus: its text, with spaces and controls visible."""
    return make_visible(token_text(str(token), style))


def display_tokens(tokens: Iterable[str], style: TokenizerStyle = "plain") -> list[str]:
    return [display_token(token, style) for token in tokens]


def hover_token(token: str, style: TokenizerStyle) -> str:
    """The shown token, followed by the raw spelling when that differs (for hovers and tooltips)."""
    shown = display_token(token, style)
    return shown if shown == token else f"{shown}   (raw {token!r})"
