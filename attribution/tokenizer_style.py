"""Which spelling a tokenizer uses for its tokens, recorded in results so viewers can show them as text.

Byte-level BPE (GPT-2, RoBERTa/BART, Llama-3, Qwen) maps every byte to a printable character
(a space becomes ``Ġ``, a newline ``Ċ``); SentencePiece (Marian, T5, Llama-2, Mistral) writes a
space as ``▁`` and unknown bytes as ``<0x0A>``. Exporters undo that for display from the style
alone, without the tokenizer.
"""

from __future__ import annotations

import json
from typing import Any

from attribution.results import TokenizerStyle


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
