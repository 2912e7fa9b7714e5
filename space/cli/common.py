"""What the commands share: argparse types, the model and language options, progress bars, writing results.

Light at import (standard library and ``attribution.errors``): the commands import from here at their
top, and ``--help`` must answer without torch. What loads a model or tqdm is imported inside the function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attribution.errors import InvalidInputError

if TYPE_CHECKING:
    from attribution.languages import Languages
    from attribution.models import LoadedModel, ModelSpec
    from attribution.progress import Progress

#: Most logit-lens tokens / neurons kept per graph node (more makes the JSON huge and says nothing more).
MAX_TOP_K = 100


def positive_int(value: str) -> int:
    """argparse type: a whole number >= 1."""
    return _bounded_int(value, 1, None)


def top_k_int(value: str) -> int:
    """argparse type: 0 (no logit lens) to MAX_TOP_K."""
    return _bounded_int(value, 0, MAX_TOP_K)


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number from ``minimum`` to ``maximum`` (no upper bound when None)."""
    return lambda value: _bounded_int(value, minimum, maximum)


def _bounded_int(value: str, minimum: int, maximum: int | None) -> int:
    try:
        number = int(value)
    except ValueError:  # not a number, or more digits than Python converts (sys.get_int_max_str_digits())
        from attribution.validation import quoted

        raise argparse.ArgumentTypeError(f"expected a whole number, not {quoted(value)}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise argparse.ArgumentTypeError(f"must be {bounds}, not {number}")
    return number


def add_model_arguments(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """Model, text and output options of every command that runs a model (``several``: ``--model`` repeatable)."""
    parser.add_argument(
        "--model",
        required=True,
        action="append" if several else "store",
        help="Hugging Face model id, local folder, or a bundled model name (tiny-ioi-gpt2)"
        + ("; repeat it to compare models of one kind" if several else ""),
    )
    parser.add_argument("--revision", default=None, help="model revision (branch, tag or commit) on the Hub")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--text", required=True, help="the prompt (causal LM) or the source sentence (seq2seq)")
    parser.add_argument("--target", default=None, help="target text to explain instead of generating one")
    parser.add_argument(
        "--max-tokens", type=positive_int, default=None, help="refuse inputs longer than this many tokens"
    )
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")


def _language_code(role: str) -> Callable[[str], str | None]:
    """argparse type: a language code (format only; the model's tokenizer decides which codes exist)."""
    from attribution.languages import check_code_text  # light: no torch

    def read(value: str) -> str | None:
        try:
            return check_code_text(value, role=role)
        except InvalidInputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return read


def add_language_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--src-lang`` / ``--tgt-lang``: the languages of a multilingual translation model (NLLB, mBART-50)."""
    parser.add_argument(
        "--src-lang",
        type=_language_code("source language"),
        default=None,
        metavar="CODE",
        help="source language code of a multilingual translation model (NLLB: eng_Latn, mBART-50: en_XX)",
    )
    parser.add_argument(
        "--tgt-lang",
        type=_language_code("target language"),
        default=None,
        metavar="CODE",
        help="target language code: the target starts with it and generation translates into it (NLLB: deu_Latn)",
    )


def languages_from_args(args: argparse.Namespace) -> Languages:
    """The :class:`~attribution.languages.Languages` of ``--src-lang`` / ``--tgt-lang`` (already format-checked)."""
    from attribution.languages import Languages  # light: no torch

    return Languages(args.src_lang, args.tgt_lang)


@contextmanager
def progress_bar(description: str, *, percent: bool = False) -> Iterator[Progress]:
    """A tqdm bar on stderr with the library's messages; yields the :class:`~attribution.progress.Progress` to pass.

    It shows the library's counts (``3/3`` attribution steps), or with ``percent`` the fraction done out of 100
    (work that reports fractions of 1: the contribution graph, the patching sweep).
    """
    from tqdm.auto import tqdm

    from attribution.progress import fraction_done  # light: no torch

    bar = tqdm(total=1, desc=description, file=sys.stderr, dynamic_ncols=True)

    def set_progress(done: float, total: float, message: str = "") -> None:
        if percent:
            done, total = round(100 * fraction_done(done, total)), 100
        bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield set_progress
    finally:
        bar.close()


#: Text options of the model commands, by the role the library's messages name them with: a lone surrogate
#: (what invalid UTF-8 on a command line becomes) reads the same whether found here or by the library.
TEXT_OPTION_ROLES = {
    "text": "input text",
    "target": "target",
    "contrast_target": "contrast target",
    "counterfactual": "counterfactual",
    "counterfactual_target": "counterfactual's target",
    "reference": "reference",
    "target_token": "target token",
    "contrast_token": "contrast token",
    "revision": "model revision",
}


def check_text_options(args: argparse.Namespace) -> None:
    """Refuse a text option that is not valid Unicode, before any model is loaded (texts need no model for that)."""
    from attribution.validation import check_unicode

    for name, role in TEXT_OPTION_ROLES.items():
        value = getattr(args, name, None)
        for text in value if isinstance(value, list) else [value]:
            if text is not None:
                check_unicode(text, role)


def model_spec_from_args(args: argparse.Namespace, name: str | None = None, **placement: Any) -> ModelSpec:
    """The :class:`~attribution.models.ModelSpec` of the model options (``name``: one of several ``--model``;
    ``placement``: the corpus command's device map, memory, offload folder and threads), imports torch."""
    from attribution.models import ModelSpec

    return ModelSpec(name or args.model, revision=args.revision, device=args.device, dtype=args.dtype, **placement)


def load_model_from_args(args: argparse.Namespace, name: str | None = None) -> LoadedModel:
    """The :class:`attribution.models.LoadedModel` the model options name (``name``: one of several ``--model``;
    imports torch and transformers).

    Commands call it once every other option is checked; it checks the text options first, so that
    nothing a command line can get wrong is found only after the model has loaded.
    """
    from attribution.models import load_model

    check_text_options(args)
    return load_model(model_spec_from_args(args, name))


def write_result(result: Any, path: Path) -> None:
    """Save a result dataclass as JSON; an unwritable path is a user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        result.to_json(path)
    except OSError as error:
        raise InvalidInputError(f"Cannot write {path}: {error.strerror or error}") from error
    print(f"wrote {path}", file=sys.stderr)
