"""Which spelling a tokenizer uses for its tokens, recorded in results so viewers can show them as text.

Byte-level BPE (GPT-2, RoBERTa/BART, Llama-3, Qwen) maps every byte to a printable character
(a space becomes ``Ġ``, a newline ``Ċ``); SentencePiece (Marian, T5, Llama-2, Mistral) writes a
space as ``▁`` and unknown bytes as ``<0x0A>``. Exporters undo that for display from the style
alone, without the tokenizer: :func:`token_text` gives the text a token stands for (figures mark its
spaces and controls on top, ``exporters.tokens``; ``to_dataframe()`` gives it as it is), and
:func:`result_style` the style of a result's tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

#: How a tokenizer spells tokens: byte-level BPE (GPT-2, Llama-3: ``Ġ`` for a space), SentencePiece
#: (Marian, T5, Llama-2: ``▁``), or as plain text (word-level, WordPiece).
TokenizerStyle = Literal["byte_level", "sentencepiece", "plain"]
TOKENIZER_STYLES: tuple[TokenizerStyle, ...] = ("byte_level", "sentencepiece", "plain")


def _decoder_types(spec: Any) -> set[str]:
    """Every ``type`` in a tokenizers decoder's JSON (a ``Sequence`` nests others)."""
    if isinstance(spec, dict):
        found = {spec["type"]} if isinstance(spec.get("type"), str) else set()
        for value in spec.values():
            found |= _decoder_types(value)
        return found
    if isinstance(spec, list):
        return set().union(*(_decoder_types(item) for item in spec)) if spec else set()
    return set()


def tokenizer_style(tokenizer: Any) -> TokenizerStyle:
    """``"byte_level"``, ``"sentencepiece"`` or ``"plain"`` for a transformers tokenizer (fast or slow)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    if decoder is not None:
        state = decoder.__getstate__()
        spec = json.loads(state) if isinstance(state, bytes | str) else {}
        types = _decoder_types(spec)
        if "ByteLevel" in types:
            return "byte_level"
        if types & {"Metaspace", "ByteFallback"} or "▁" in json.dumps(spec, ensure_ascii=False):
            return "sentencepiece"
        return "plain"
    if any(getattr(tokenizer, name, None) is not None for name in ("sp_model", "spm_source")):
        return "sentencepiece"
    if getattr(tokenizer, "byte_encoder", None) is not None:
        return "byte_level"
    return "plain"


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


def _all_tokens(result: Any) -> list[str]:
    """Every token a result holds: its own, a comparison's results' (``results``), a graph's logit-lens ones."""
    compared = getattr(result, "results", None)
    if isinstance(compared, list):
        return [token for item in compared for token in _all_tokens(item)]
    tokens = [*getattr(result, "source_tokens", []), *getattr(result, "target_tokens", [])]
    for node in getattr(result, "nodes", ()):
        tokens += [str(token) for token, _ in (*node.top_tokens, *node.promoted, *node.suppressed)]
    return tokens


def result_style(result: Any, tokens: Iterable[str] = ()) -> TokenizerStyle:
    """The style recorded in the result's provenance, else guessed from its tokens (and ``tokens``).

    Any result with a ``provenance`` works (the intervention results too); ``tokens`` adds tokens the
    guess should look at for result types whose tokens live elsewhere.
    """
    recorded = getattr(getattr(result, "provenance", None), "tokenizer_style", None)
    if recorded in ("byte_level", "sentencepiece"):
        return recorded
    return guess_style([*_all_tokens(result), *map(str, tokens)])
