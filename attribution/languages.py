"""Source and target languages of multilingual translation models (NLLB / M2M-100, mBART-50).

These models read the languages as tokens: the tokenizer puts the source language code before (or
after) the source sentence and the target language code at the start of the target, and generation
must be told to start the translation with the target code (``forced_bos_token_id``), otherwise the
decoder picks a language itself. The tokenizer keeps the languages as mutable state (``src_lang`` /
``tgt_lang``) on the one object the Space shares between requests, so :func:`languages_set` sets them
only for the duration of a run (callers hold ``loaded.lock``) and restores what it found.

One place for all of it: :func:`check_languages` validates codes against the tokenizer (a model
without language codes, as mT5, refuses them), :func:`languages_set` applies them to tokenisation,
:func:`generation_kwargs` gives what ``generate`` needs, :func:`check_code_text` is the cheap format
check the CLI and the app run on untrusted strings before loading anything (:func:`typed_languages`: the
:class:`Languages` of two typed codes). Languages travel as one :class:`Languages` value: every library
function that takes them has a ``languages: Languages | None = None`` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from attribution.errors import InvalidInputError

if TYPE_CHECKING:  # light at run time: the CLI checks codes with this module before importing torch
    from attribution.models import LoadedModel
    from attribution.results import Provenance

#: Longest language code accepted (NLLB's are 8 characters, ``eng_Latn``; M2M-100's 2 or 3, mBART's 5).
MAX_CODE_LENGTH = 32
_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
#: Families whose tokenizer takes plain text: mT5/T5 translate from a task prefix in the text itself.
_PLAIN_TEXT_FAMILIES = frozenset({"t5", "mt5", "umt5"})


@dataclass(frozen=True)
class Languages:
    """Language codes of a request (None: the tokenizer's default / not set)."""

    source: str | None = None
    target: str | None = None

    def __bool__(self) -> bool:
        return self.source is not None or self.target is not None

    def or_else(self, defaults: Languages) -> Languages:
        """These languages, each code not given taken from ``defaults`` (e.g. a given graph's)."""
        return Languages(self.source or defaults.source, self.target or defaults.target)


NO_LANGUAGES = Languages()


def check_code_text(code: str | None, *, role: str) -> str | None:
    """A language code as typed (``role``: "source language"...): stripped, bounded, of code characters only.

    Empty or None means not set. Cheap, needs no model: run it before loading one.
    """
    if code is None:
        return None
    if not isinstance(code, str):
        raise InvalidInputError(f"The {role} must be a language code such as eng_Latn, not {type(code).__name__}.")
    code = code.strip()
    if not code:
        return None
    if len(code) > MAX_CODE_LENGTH or not _CODE_PATTERN.fullmatch(code):
        shown = code[:MAX_CODE_LENGTH] + ("…" if len(code) > MAX_CODE_LENGTH else "")
        raise InvalidInputError(
            f"The {role} {shown!r} is not a language code (letters, digits, '_' and '-', at most "
            f"{MAX_CODE_LENGTH} characters, e.g. eng_Latn or de_DE)."
        )
    return code


def language_codes(tokenizer) -> list[str] | None:
    """The language codes ``tokenizer`` knows, or None when it has no languages to set."""
    if not callable(getattr(tokenizer, "set_src_lang_special_tokens", None)):
        return None
    mapping = getattr(tokenizer, "lang_code_to_id", None)  # mBART, mBART-50, M2M-100
    if isinstance(mapping, dict) and mapping:
        return list(mapping)
    for name in ("extra_special_tokens", "additional_special_tokens"):  # NLLB (transformers 5, then 4)
        tokens = getattr(tokenizer, name, None)
        if isinstance(tokens, list | tuple) and tokens:
            return [str(token) for token in tokens]
    return None


def typed_languages(source: str | None, target: str | None) -> Languages:
    """The languages of two typed codes (a form's boxes, a command's options), format-checked; empty: not set.

    Cheap, needs no model: the app and the command line build a request's :class:`Languages` with it
    before loading one.
    """
    return Languages(check_code_text(source, role="source language"), check_code_text(target, role="target language"))


def check_languages(loaded: LoadedModel, languages: Languages | None = None) -> Languages:
    """``languages`` (None: not set) validated for ``loaded``: known to its tokenizer, or refused with the reason.

    Returns them with their codes stripped. Raises :class:`InvalidInputError` for a malformed or unknown
    code (naming a few valid ones), for languages given to a model whose tokenizer has none (mT5 and T5
    take plain text with a task prefix), and for languages given to a causal model.
    """
    given = languages or NO_LANGUAGES
    languages = typed_languages(given.source, given.target)
    if not languages:
        return languages
    if loaded.kind != "seq2seq":
        raise InvalidInputError(
            f"{loaded.model_id} is a causal language model: source and target languages are for translation "
            "models (NLLB, M2M-100, mBART-50); leave them empty."
        )
    codes = language_codes(loaded.tokenizer)
    if codes is None:
        if loaded.model_type in _PLAIN_TEXT_FAMILIES:
            raise InvalidInputError(
                f"{loaded.model_id} ({loaded.model_type}) has no language codes: it takes plain text, with the task "
                "in the input itself (e.g. 'translate English to German: ...'); leave the languages empty."
            )
        raise InvalidInputError(
            f"{loaded.model_id}'s tokenizer has no language codes (a model for one language pair, as opus-mt, "
            "translates between its own languages); leave the languages empty."
        )
    known = set(codes)
    for role, code in (("source language", languages.source), ("target language", languages.target)):
        if code is not None and code not in known:
            close = [c for c in codes if c.lower().startswith(code[:2].lower())][:5] or codes[:5]
            raise InvalidInputError(
                f"Unknown {role} {code!r} for {loaded.model_id}: it knows {len(codes)} language codes, "
                f"e.g. {', '.join(close)}."
            )
    return languages


def languages_of(provenance: Provenance) -> Languages:
    """The languages a result was made with (from its provenance)."""
    return Languages(provenance.source_language, provenance.target_language)


def provenance_with(loaded: LoadedModel, languages: Languages) -> Provenance:
    """``loaded``'s provenance recording the languages a result was made with (exports show them)."""
    return replace(loaded.provenance(), source_language=languages.source, target_language=languages.target)


@contextmanager
def languages_set(loaded: LoadedModel, languages: Languages) -> Iterator[None]:
    """Tokenise with ``languages`` inside the block, and leave the shared tokenizer's languages as they were.

    Callers hold ``loaded.lock`` (the tokenizer is shared). Nothing is changed when no language is set.
    """
    if not languages:
        yield
        return
    tokenizer = loaded.tokenizer
    source_before, target_before = tokenizer.src_lang, getattr(tokenizer, "tgt_lang", None)
    try:
        if languages.source is not None:
            tokenizer.src_lang = languages.source  # the setter also rebuilds the source special tokens
        if languages.target is not None:
            tokenizer.tgt_lang = languages.target
        yield
    finally:
        tokenizer.tgt_lang = target_before
        tokenizer.src_lang = source_before


def generation_kwargs(loaded: LoadedModel, languages: Languages) -> dict[str, int]:
    """``generate`` keyword arguments for ``languages``: ``forced_bos_token_id`` = the target language code.

    Only where the tokenizer starts a target with its language code (NLLB, M2M-100, mBART-50): there
    the first generated token must be that code. Call inside :func:`languages_set`.
    """
    if languages.target is None:
        return {}
    tokenizer = loaded.tokenizer
    get_lang_id = getattr(tokenizer, "get_lang_id", None)  # M2M-100: code "de", token "__de__"
    code_id = (
        get_lang_id(languages.target) if callable(get_lang_id) else tokenizer.convert_tokens_to_ids(languages.target)
    )
    first = tokenizer(text_target="a", add_special_tokens=True)["input_ids"][:1]
    # one token converts to one id (convert_tokens_to_ids is typed for lists of tokens too)
    return {"forced_bos_token_id": int(code_id)} if first == [code_id] else {}  # type: ignore[arg-type]
