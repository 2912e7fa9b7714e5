"""Tokens as a reader should see them: the text they stand for, with spaces and invisible characters marked.

Results keep every token exactly as its tokenizer spells it (``ĠMary``, ``▁Mary``, ``Ċ``,
``<0x0A>``); figures, tables and labels show :func:`display_token` instead, and hovers add the raw
spelling. The spelling style comes from the result's provenance (``tokenizer_style``), or is
guessed from the tokens for results saved before it was recorded. No tokenizer is needed, so a
saved JSON displays the same way anywhere. This module imports neither Bokeh nor torch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from attribution.results import AttributionResult, Comparison, ContributionGraph, ResultType, TokenizerStyle

#: Shown before a token that starts with a space (" Mary" → "·Mary"): subtle, but never lost.
LEADING_SPACE = "·"
#: A space that is the whole token, or one of several at its edges.
VISIBLE_SPACE = "␣"
_VISIBLE = {"\n": "↵", "\t": "⇥", "\r": "␍", "\u00a0": "⍽"}


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte (the inverse of what byte-level BPE does to text)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + shifted)
            shifted += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}


BYTE_OF_CHAR = _byte_level_alphabet()
_BYTE_TOKENS = re.compile(r"^(?:<0x[0-9A-Fa-f]{2}>)+$")


def _bytes_as_text(data: bytes) -> str:
    """UTF-8 text; bytes that are no complete character (a token can hold part of one) read ``<0xE2>``."""
    text = data.decode("utf-8", errors="surrogateescape")
    return "".join(f"<0x{ord(c) - 0xDC00:02X}>" if "\udc80" <= c <= "\udcff" else c for c in text)


def token_text(token: str, style: TokenizerStyle) -> str:
    """The text a token stands for (``"ĠMary"`` → ``" Mary"``), before invisible characters are marked."""
    if style == "byte_level":
        if token and all(c in BYTE_OF_CHAR for c in token):
            return _bytes_as_text(bytes(BYTE_OF_CHAR[c] for c in token))
        return token  # an added token outside the byte alphabet is plain text
    if style == "sentencepiece":
        if _BYTE_TOKENS.match(token):
            return _bytes_as_text(bytes(int(token[i + 3 : i + 5], 16) for i in range(0, len(token), 6)))
        return token.replace("▁", " ")
    return token


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


def guess_style(tokens: Iterable[str]) -> TokenizerStyle:
    """The spelling of tokens saved without a recorded style: ``▁`` → SentencePiece, ``Ġ``/``Ċ`` → byte-level."""
    tokens = [str(token) for token in tokens]
    if any("▁" in token for token in tokens):
        return "sentencepiece"
    marked = any(c in token for token in tokens for c in "ĠĊĉ")
    if marked and all(c in BYTE_OF_CHAR for token in tokens for c in token if not _is_special(token)):
        return "byte_level"
    return "plain"


def _is_special(token: str) -> bool:
    return token.startswith("<") and token.endswith(">")


def _all_tokens(result: ResultType | Any) -> list[str]:
    if isinstance(result, Comparison):
        return [token for item in result.results for token in _all_tokens(item)]
    tokens = [*getattr(result, "source_tokens", []), *getattr(result, "target_tokens", [])]
    if isinstance(result, ContributionGraph):
        for node in result.nodes:
            tokens += [str(token) for token, _ in (*node.top_tokens, *node.promoted, *node.suppressed)]
    return tokens


def result_style(result: AttributionResult | ContributionGraph | Any, tokens: Iterable[str] = ()) -> TokenizerStyle:
    """The style recorded in the result's provenance, else guessed from its tokens (and ``tokens``).

    Any result with a ``provenance`` works (the intervention results too); ``tokens`` adds tokens the
    guess should look at for result types whose tokens live elsewhere.
    """
    recorded = getattr(getattr(result, "provenance", None), "tokenizer_style", None)
    if recorded in ("byte_level", "sentencepiece"):
        return recorded
    return guess_style([*_all_tokens(result), *map(str, tokens)])


def hover_token(token: str, style: TokenizerStyle) -> str:
    """The shown token, followed by the raw spelling when that differs (for hovers and tooltips)."""
    shown = display_token(token, style)
    return shown if shown == token else f"{shown}   (raw {token!r})"
