"""Run an Inseq feature-attribution method on a loaded model and return an :class:`AttributionResult`.

What it adds to a bare ``inseq.attribute`` call:

- Every request is checked before the model is touched (method known and supported on this
  architecture, see :mod:`attribution.capabilities`; step scores known; texts non-empty and within
  the model's context), so a user gets one clear :class:`~attribution.errors.InvalidInputError` or
  :class:`~attribution.errors.UnsupportedError` instead of a stack trace.
- The shared model object is left exactly as it was: the call holds ``loaded.lock`` (Inseq installs
  hooks and the Space calls us from several threads), and a guard removes any hook Inseq or Captum
  left behind (a failed ``value_zeroing`` does), restores the training flag, the config and
  tokenizer attributes Inseq sets (``pad_token_id``, ``pad_token``...) and drops parameter gradients.
- Targets. Causal models: ``target`` is either the whole sequence starting with the prompt or a
  continuation of it; a continuation is appended to the prompt, with one space in between when
  neither side has whitespace at the join (Inseq requires the prompt as prefix of the target).
  Seq2seq models: ``target`` is the output sentence. Without a target the model generates one
  greedily (``max_new_tokens``). ``contrast_target`` follows the same rules and makes the attributed
  function ``contrast_prob_diff`` (Inseq's contrastive attribution, Yin & Neubig 2022).
- Methods that Inseq computes at the final step only (``attention``, ``value_zeroing``) refuse
  step scores; they are then computed in a second pass with Inseq's ``dummy`` method.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from inspect import signature
from typing import Any

import numpy as np
import torch

from attribution.capabilities import (
    METHODS,
    STEP_SCORES,
    TESTED_FAMILIES,
    MethodSpec,
    check_method,
    check_request,
)
from attribution.errors import BudgetExceededError, InvalidInputError, UnsupportedError
from attribution.languages import (
    NO_LANGUAGES,
    Languages,
    check_languages,
    generation_kwargs,
    languages_set,
    provenance_with,
)
from attribution.model_guard import model_state_guard
from attribution.models import LoadedModel, decode_text, join_continuation, prompt_with_continuation
from attribution.progress import Progress, no_progress
from attribution.results import AttributionResult

logger = logging.getLogger(__name__)

# A contrastive run always attributes the original inputs (Inseq's default, and what gradient methods need);
# Inseq warns about it on every such run, naming a ``--contrast_force_inputs`` flag of its own command line
# that neither this library nor its app or command line has. The warning says nothing a user here can act on.
warnings.filterwarnings("ignore", message="Contrastive inputs do not match original inputs", category=UserWarning)

#: Keyword arguments of Captum's ``attribute`` that Inseq fills itself (not user parameters).
_INTERNAL_ARGS = frozenset(
    {"self", "inputs", "target", "additional_forward_args", "baselines", "args", "kwargs", "return_convergence_delta"}
)
_WORD_START_MARKERS = ("▁", "Ġ", "Ċ", " ")


def available_methods() -> list[str]:
    """Every Inseq method we offer, cheap and common ones first (some are refused per architecture)."""
    return list(METHODS)


def available_step_scores() -> list[str]:
    """Inseq step scores we offer; the contrastive ones (``contrast_*``) need a contrast target."""
    return list(STEP_SCORES)


def check_supported(loaded: LoadedModel, method: str) -> None:
    """Raise InvalidInputError (unknown method) or UnsupportedError (not for this model) before any work."""
    _check_supported(loaded, method)


def _check_supported(loaded: LoadedModel, method: str) -> MethodSpec:
    spec = check_method(method, loaded.kind, loaded.model_type)
    if method == "attention" and getattr(loaded.model.config, "_attn_implementation", "eager") != "eager":
        raise UnsupportedError(
            f"attention needs the model's attention weights, but {loaded.model_id} was loaded with "
            f"{loaded.model.config._attn_implementation!r} attention; load it with eager attention "
            "(load_model(..., eager_attention=True))."
        )
    return spec


def attribute(
    loaded: LoadedModel,
    text: str,
    *,
    method: str = "saliency",
    target: str | None = None,
    step_scores: Sequence[str] = ("probability",),
    contrast_target: str | None = None,
    method_params: Mapping[str, Any] | None = None,
    max_new_tokens: int = 20,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    languages: Languages | None = None,
) -> AttributionResult:
    """Attribute the model's output for ``text`` (the prompt, or the source sentence) with ``method``.

    ``method_params`` go to the Inseq/Captum method (e.g. ``{"n_steps": 20}`` for integrated
    gradients) and are checked against what the method accepts. ``max_tokens`` is an extra length
    limit (e.g. a Space operator's) on top of the model's context. ``progress`` hears of each attribution
    step as it completes (``(2, 3, "token 2 of 3")``; ``"generating"`` first when the target is generated).
    ``languages``: the source and target language codes of a multilingual translation model (NLLB
    ``eng_Latn``, mBART-50 ``en_XX``; see :mod:`attribution.languages`).
    """
    spec = _check_supported(loaded, method)
    scores = check_request(method, step_scores, target=target, contrast_target=contrast_target)
    _check_max_new_tokens(max_new_tokens)
    languages = check_languages(loaded, languages)
    item = _check_one(loaded, method, 0, text, target, contrast_target, scores, max_tokens)
    return run_checked(
        loaded,
        spec,
        item.text,
        target=item.target,
        step_scores=scores,
        contrast_target=item.contrast,
        method_params=dict(method_params or {}),
        max_new_tokens=max_new_tokens,
        progress=progress or no_progress,
        languages=languages,
    )


def run_checked(
    loaded: LoadedModel,
    spec: MethodSpec,
    text: str,
    *,
    target: str | None,
    step_scores: list[str],
    contrast_target: str | None,
    method_params: dict[str, Any],
    max_new_tokens: int,
    progress: Progress,
    languages: Languages = NO_LANGUAGES,
) -> AttributionResult:
    """Run ``spec`` on already validated inputs (causal targets already start with the prompt).

    Separate from :func:`attribute` so that tests can run a refused method anyway and check that
    the refusal is still needed and that a failure leaves the model untouched. The very run
    :func:`attribute_batch` makes, for a batch of one.
    """
    item = _Checked(0, text, target, contrast_target)
    return _run_batch(loaded, spec, [item], step_scores, method_params, max_new_tokens, progress, languages)[0]


def _check_max_new_tokens(max_new_tokens: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens must be a positive whole number, not {max_new_tokens!r}.")


def batch_exact(loaded: LoadedModel, method: str) -> bool:
    """Whether Inseq attributes several inputs of ``loaded`` with ``method`` in one batch.

    Inseq 0.7.1 silently falls back to one input at a time for decoder-only models with forced
    targets, for final-step methods (``attention``, ``value_zeroing``) on encoder-decoder models and
    for LIME. Two more give numbers that depend on the batch's make-up: ``gradient_shap`` draws its
    random baselines per batch and ``discretized_integrated_gradients`` builds its interpolation
    paths from the whole batch. Elsewhere (the other gradient methods and occlusion on
    encoder-decoder models) a padded batch gives each input the scores it gets alone, up to float32
    rounding (``tests/attribution/test_corpus_batching.py`` checks every method on the bundled translation model).
    """
    spec = _check_supported(loaded, method)
    return loaded.kind == "seq2seq" and not spec.final_step and spec.name not in _NOT_BATCHED


#: Methods whose batched numbers differ from their one-input numbers (see :func:`batch_exact`).
_NOT_BATCHED = frozenset({"lime", "gradient_shap", "discretized_integrated_gradients", "reagent"})


def attribute_batch(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    method: str = "saliency",
    targets: Sequence[str | None] | None = None,
    step_scores: Sequence[str] = ("probability",),
    contrast_targets: Sequence[str | None] | None = None,
    method_params: Mapping[str, Any] | None = None,
    max_new_tokens: int = 20,
    max_tokens: int | None = None,
    batch_size: int = 8,
    languages: Languages | None = None,
) -> list[AttributionResult | Exception]:
    """:func:`attribute` for many inputs: per input, in order, its result or the error it met.

    Inputs are checked one by one (a bad input gets its own :class:`InvalidInputError` and does
    not stop the others); the valid ones are attributed ``batch_size`` at a time in one Inseq call
    where that gives the numbers each gets alone (:func:`batch_exact`), else one at a time. A batch
    that fails as a whole is retried input by input, so a failure lands on the input that caused it.
    Errors about the request itself (unknown method or step score, bad parameters, unknown languages) are raised,
    and so is a
    time budget running out (:class:`~attribution.errors.BudgetExceededError`: no input is to blame).
    """
    spec = _check_supported(loaded, method)
    names = check_request(method, step_scores, target="", contrast_target="")  # names; contrasts: per input
    params = dict(method_params or {})
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive whole number, not {batch_size!r}.")
    _check_max_new_tokens(max_new_tokens)
    languages = check_languages(loaded, languages)
    n = len(texts)
    targets = list(targets) if targets is not None else [None] * n
    contrasts = list(contrast_targets) if contrast_targets is not None else [None] * n
    if len(targets) != n or len(contrasts) != n:
        raise InvalidInputError(f"Give one target and one contrast target per text ({n} texts).")
    outcomes: dict[int, AttributionResult | Exception] = {}  # by input index: every input gets one
    ready: list[_Checked] = []
    for index, (text, target, contrast) in enumerate(zip(texts, targets, contrasts, strict=True)):
        try:
            ready.append(_check_one(loaded, method, index, text, target, contrast, names, max_tokens))
        except InvalidInputError as error:
            outcomes[index] = error
    size = batch_size if batch_exact(loaded, method) else 1
    for batch in _batches(ready, size):
        try:
            results: list[AttributionResult | Exception] = list(
                _run_batch(loaded, spec, batch, names, params, max_new_tokens, languages=languages)
            )
        except (InvalidInputError, BudgetExceededError):
            raise  # a parameter the method does not accept (the same for every input), or the run's time is up
        except Exception as error:
            if len(batch) == 1:
                results = [error]
            else:  # find the input that failed; the others still get their results
                results = [_run_one(loaded, spec, item, names, params, max_new_tokens, languages) for item in batch]
        for item, result in zip(batch, results, strict=True):
            outcomes[item.index] = result
    return [outcomes[index] for index in range(n)]


@dataclass(frozen=True)
class _Checked:
    """One input of :func:`attribute_batch` after its checks (a causal target already holds the prompt)."""

    index: int
    text: str
    target: str | None
    contrast: str | None


def _check_one(
    loaded: LoadedModel,
    method: str,
    index: int,
    text: str,
    target: str | None,
    contrast: str | None,
    step_scores: list[str],
    max_tokens: int | None,
) -> _Checked:
    check_request(method, step_scores, target=target, contrast_target=contrast)
    text = loaded.validate_text(text, role="input text", max_tokens=max_tokens)
    if target is not None:
        target = _full_target(loaded, text, target, role="target", max_tokens=max_tokens)
    if contrast is not None:
        contrast = _full_target(loaded, text, contrast, role="contrast target", max_tokens=max_tokens)
    return _Checked(index, text, target, contrast)


def _batches(items: list[_Checked], size: int) -> Iterator[list[_Checked]]:
    """Consecutive runs of at most ``size`` inputs; contrastive and plain inputs never share a batch."""
    batch: list[_Checked] = []
    for item in items:
        if batch and (len(batch) == size or (batch[0].contrast is None) != (item.contrast is None)):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _run_one(
    loaded: LoadedModel,
    spec: MethodSpec,
    item: _Checked,
    step_scores: list[str],
    params: dict[str, Any],
    max_new_tokens: int,
    languages: Languages,
) -> AttributionResult | Exception:
    try:
        return _run_batch(loaded, spec, [item], step_scores, params, max_new_tokens, languages=languages)[0]
    except BudgetExceededError:
        raise  # not this input's failure: the whole run is out of time
    except Exception as error:
        return error


def _run_batch(
    loaded: LoadedModel,
    spec: MethodSpec,
    batch: list[_Checked],
    step_scores: list[str],
    params: dict[str, Any],
    max_new_tokens: int,
    progress: Progress = no_progress,
    languages: Languages = NO_LANGUAGES,
) -> list[AttributionResult]:
    """Run ``spec`` on checked inputs in one Inseq call (generating the missing targets first).

    Holds ``loaded.lock``; the state guard removes whatever Inseq or Captum leave on the model, and the
    tokenizer's languages are ``languages`` for the run only.
    """
    with loaded.lock, model_state_guard(loaded), languages_set(loaded, languages):
        texts = [item.text for item in batch]
        if any(item.target is None for item in batch):
            progress(0, 1, "generating")
        targets = [item.target or _generate(loaded, item.text, max_new_tokens, languages) for item in batch]
        contrasts = [item.contrast for item in batch if item.contrast is not None]  # all or none (_batches)
        inseq_model = _wrap_model(loaded)
        try:
            return _run(
                loaded,
                inseq_model,
                spec,
                texts,
                targets,
                step_scores,
                contrasts or None,
                params,
                progress,
                languages,
            )
        finally:
            _unhook(inseq_model)


def _full_target(loaded: LoadedModel, text: str, target: str, *, role: str, max_tokens: int | None) -> str:
    """The target as Inseq wants it: for causal models the prompt followed by the continuation."""
    loaded.validate_text(target, role=role, max_tokens=max_tokens)
    if loaded.kind == "seq2seq":
        return target
    full = prompt_with_continuation(text, target)
    if full == text:
        raise InvalidInputError(f"The {role} only repeats the prompt: add the continuation to explain.")
    return loaded.validate_text(full, role=f"prompt with its {role}", max_tokens=max_tokens)


def generate_target(
    loaded: LoadedModel,
    text: str,
    *,
    max_new_tokens: int = 20,
    max_tokens: int | None = None,
    languages: Languages | None = None,
) -> str:
    """The target :func:`attribute` generates when none is given (greedy): the causal model's prompt and
    continuation, or the seq2seq model's output.

    A caller that generates it first can estimate the run's cost from the real output
    (:func:`attribution.cost.estimate_attribution_cost`) and then pass it as the target: the run explains
    the very same tokens, and generation is not done twice.
    """
    _check_max_new_tokens(max_new_tokens)
    languages = check_languages(loaded, languages)
    text = loaded.validate_text(text, role="input text", max_tokens=max_tokens)
    with loaded.lock, model_state_guard(loaded), languages_set(loaded, languages):
        return _generate(loaded, text, max_new_tokens, languages)


def _generate(loaded: LoadedModel, text: str, max_new_tokens: int, languages: Languages = NO_LANGUAGES) -> str:
    """Greedy generation: the causal model's prompt + continuation, or the seq2seq model's output (in the
    target language, when one is set)."""
    tokenizer = loaded.tokenizer
    encoded = tokenizer(text, return_tensors="pt").to(loaded.device)
    context = loaded.max_input_tokens
    if context is not None and loaded.kind == "causal":
        room = context - encoded["input_ids"].shape[1]
        if room < 1:
            raise InvalidInputError(
                f"The input text fills {loaded.model_id}'s whole context ({context} tokens): shorten it to leave "
                "room for the generated text, or give a target."
            )
        max_new_tokens = min(max_new_tokens, room)
    elif context is not None:
        max_new_tokens = min(max_new_tokens, context - 1)  # the decoder's positions, after its start token
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        # transformers 5 types generate() on GenerationMixin, which every Auto*LM class loaded here mixes in
        output = loaded.model.generate(  # type: ignore[operator]
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_token_id,
            **generation_kwargs(loaded, languages),
        )[0]
    if loaded.kind == "seq2seq":
        generated = decode_text(tokenizer, output).strip()
        full = generated
    else:
        generated = decode_text(tokenizer, output[encoded["input_ids"].shape[1] :])
        decoded = decode_text(tokenizer, output)
        full = decoded if decoded.startswith(text) and len(decoded) > len(text) else join_continuation(text, generated)
    if not generated.strip():
        raise InvalidInputError(
            f"{loaded.model_id} generated nothing for this input (it ended the text at once); give a target to explain."
        )
    return full


def _crossentropy(args) -> torch.Tensor:
    """Inseq 0.7.1's ``crossentropy`` with the target ids shaped ``[batch]`` (it breaks for a batch of one)."""
    logits = args.attribution_model.output2logits(args.forward_output)
    target_ids = args.target_ids.reshape(logits.shape[0]).to(logits.device)
    return torch.nn.functional.cross_entropy(logits, target_ids, reduction="none")


def _perplexity(args) -> torch.Tensor:
    """Inseq's definition, ``2 ** crossentropy`` (cross-entropy in nats), on the fixed cross-entropy."""
    return 2 ** _crossentropy(args)


@functools.cache
def _register_step_function_fixes() -> None:
    import inseq

    step_functions_logger = logging.getLogger("inseq.attr.step_functions")
    level = step_functions_logger.level
    step_functions_logger.setLevel(logging.ERROR)  # it warns "Overwriting crossentropy step function."
    try:
        inseq.register_step_function(_crossentropy, "crossentropy", overwrite=True)
        inseq.register_step_function(_perplexity, "perplexity", overwrite=True)
    finally:
        step_functions_logger.setLevel(level)


def _wrap_model(loaded: LoadedModel):
    """An Inseq wrapper around the very same model object (no copy, no move to another device)."""
    from inseq.models import HuggingfaceModel

    _register_step_function_fixes()
    return HuggingfaceModel.load(loaded.model, "dummy", tokenizer=loaded.tokenizer, device=loaded.device.type)


def _unhook(inseq_model) -> None:
    method = inseq_model.attribution_method
    if method is not None and inseq_model.is_hooked:
        method.unhook()
    inseq_model.attribution_method = None


def _run(
    loaded: LoadedModel,
    inseq_model,
    spec: MethodSpec,
    texts: list[str],
    targets: list[str],
    step_scores: list[str],
    contrast_targets: list[str] | None,
    params: dict[str, Any],
    report: Progress,
    languages: Languages = NO_LANGUAGES,
) -> list[AttributionResult]:
    """One Inseq call over ``texts`` (one batch) and its results, in order; Inseq may split it further."""
    is_seq2seq = loaded.kind == "seq2seq"
    attribute_target = is_seq2seq and spec.target_side_on_seq2seq
    method_object = inseq_model.get_attribution_method(spec.name, override_default_attribution=True)
    _check_params(spec.name, method_object, params)
    total = 1 if spec.final_step else max(_expected_steps(loaded, t, g) for t, g in zip(texts, targets, strict=True))
    _count_steps(method_object, total, report)
    contrast = {"contrast_targets": _one_or_list(contrast_targets)} if contrast_targets is not None else {}
    attributed_fn = "contrast_prob_diff" if contrast_targets is not None else "probability"
    batch = {"batch_size": len(texts)} if len(texts) > 1 else {}
    output = _call_inseq(
        loaded,
        spec,
        inseq_model,
        _one_or_list(texts),
        _one_or_list(targets),
        attributed_fn=attributed_fn,
        attribute_target=attribute_target,
        step_scores=[] if spec.final_step else step_scores,
        **batch,
        **contrast,
        **params,
    )
    sequences = [output[i].aggregate() for i in range(len(texts))]
    step_values = [
        {name: sequence.step_scores[name] for name in step_scores if not spec.final_step} for sequence in sequences
    ]
    if spec.final_step and step_scores:
        _unhook(inseq_model)
        inseq_model.get_attribution_method("dummy", override_default_attribution=True)
        scores_only = _call_inseq(
            loaded,
            spec,
            inseq_model,
            _one_or_list(texts),
            _one_or_list(targets),
            attributed_fn=attributed_fn,
            step_scores=step_scores,
            **batch,
            **contrast,
        )
        step_values = [{name: scores_only[i].step_scores[name] for name in step_scores} for i in range(len(texts))]
    report(total, total, "done")
    contrasts: list[str | None] = [*contrast_targets] if contrast_targets is not None else [None] * len(texts)
    return [
        _result(
            loaded,
            spec,
            sequence,
            text,
            target,
            values,
            contrast_target,
            params,
            attributed_fn,
            attribute_target,
            languages,
        )
        for sequence, text, target, values, contrast_target in zip(
            sequences, texts, targets, step_values, contrasts, strict=True
        )
    ]


def _one_or_list(items: list[str]) -> str | list[str]:
    """What Inseq gets for one input (a string, as :func:`attribute` always passed) or several."""
    return items[0] if len(items) == 1 else items


def _result(
    loaded: LoadedModel,
    spec: MethodSpec,
    sequence,
    text: str,
    target: str,
    step_values: Mapping[str, torch.Tensor],
    contrast_target: str | None,
    params: dict[str, Any],
    attributed_fn: str,
    attribute_target: bool,
    languages: Languages = NO_LANGUAGES,
) -> AttributionResult:
    """One aggregated Inseq sequence attribution as an :class:`AttributionResult`."""
    is_seq2seq = loaded.kind == "seq2seq"
    source_tokens = [t.token for t in sequence.source] if is_seq2seq else []
    target_tokens, target_ids = _target_tokens(loaded, sequence.target)
    start = int(sequence.attr_pos_start)
    n_steps = len(target_tokens) - start
    source_scores = _matrix(sequence.source_attributions, (len(source_tokens), n_steps)) if is_seq2seq else None
    target_scores = _matrix(sequence.target_attributions, (len(target_tokens), n_steps))
    recorded_params = {
        **params,
        "attributed_fn": attributed_fn,
        "attribute_target": attribute_target if is_seq2seq else True,
        "aggregation": _aggregation_name(sequence),
    }
    return AttributionResult(
        provenance=provenance_with(loaded, languages),
        method=spec.name,
        method_params=recorded_params,
        source_text=text,
        target_text=target,
        source_tokens=source_tokens,
        target_tokens=target_tokens,
        attributed_start=start,
        source_scores=source_scores,
        target_scores=target_scores,
        step_scores={name: [float(v) for v in values.reshape(-1)[:n_steps]] for name, values in step_values.items()},
        contrast_target=contrast_target,
        source_word_ids=_word_ids(loaded, text, [t.id for t in sequence.source], as_target=False)
        if is_seq2seq
        else None,
        target_word_ids=_word_ids(loaded, target, target_ids, as_target=is_seq2seq),
    )


def _target_tokens(loaded: LoadedModel, tokens_with_ids) -> tuple[list[str], list[int]]:
    """Target tokens and ids; Inseq shows a token differing from the contrast as ``"contrast → target"``, id -1."""
    tokens, ids = [], []
    for token_with_id in tokens_with_ids:
        token, token_id = token_with_id.token, token_with_id.id
        if token_id == -1 and _CONTRAST_ARROW in token:
            token = token.rsplit(_CONTRAST_ARROW, 1)[1]
            token_id = loaded.tokenizer.convert_tokens_to_ids(token)
        tokens.append(token)
        ids.append(token_id)
    return tokens, ids


_CONTRAST_ARROW = " → "


def _call_inseq(
    loaded: LoadedModel, spec: MethodSpec, inseq_model, text: str | list[str], target: str | list[str], **kwargs
):
    """Inseq's attribute; on a family we never tested, a failure becomes a clear UnsupportedError."""
    try:
        return inseq_model.attribute(text, target, show_progress=False, **kwargs)
    except (RuntimeError, ValueError, TypeError, AssertionError, NotImplementedError, AttributeError) as error:
        if loaded.model_type in TESTED_FAMILIES:
            raise
        raise UnsupportedError(
            f"{spec.name} failed on this {loaded.model_type} model, an architecture we have not tested "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). Try saliency or attention."
        ) from error


def _check_params(method: str, method_object, params: Mapping[str, Any]) -> None:
    _, unknown = method_object.get_attribution_args(**params)
    if unknown:
        accepted = sorted(
            set(signature(method_object.method.attribute).parameters)
            - _INTERNAL_ARGS
            - set(getattr(method_object, "ignore_extra_args", []) or [])
        )
        raise InvalidInputError(
            f"Unknown parameter {next(iter(unknown))!r} for {method}; it accepts: {', '.join(accepted) or 'none'}."
        )


def _expected_steps(loaded: LoadedModel, text: str, target: str) -> int:
    if loaded.kind == "seq2seq":
        return max(1, len(loaded.tokenizer(text_target=target)["input_ids"]))
    return max(1, loaded.count_tokens(target) - loaded.count_tokens(text))


def _count_steps(method_object, total: int, report: Progress) -> None:
    """Report progress after each of Inseq's attribution steps (Inseq has no callback of its own)."""
    step = method_object.filtered_attribute_step
    done = 0

    def counted(*args, **kwargs):
        nonlocal done
        output = step(*args, **kwargs)
        done += 1
        report(min(done, total), total, f"token {done} of {total}")
        return output

    method_object.filtered_attribute_step = counted


def _matrix(scores: torch.Tensor | None, shape: tuple[int, int]) -> np.ndarray:
    """Inseq's 2-D scores as float64 numpy; all NaN when Inseq produced none for this side."""
    if scores is None:
        return np.full(shape, np.nan)
    matrix = scores.detach().to(torch.float64).cpu().numpy()
    if matrix.shape != shape:
        raise RuntimeError(f"Inseq returned scores of shape {matrix.shape}, expected {shape}")
    return matrix


def _aggregation_name(sequence) -> str:
    aggregator = getattr(sequence, "_aggregator", None)
    names = aggregator if isinstance(aggregator, list) else [aggregator]
    return "+".join(str(n) for n in names if n) or "none"


def _word_ids(loaded: LoadedModel, text: str, token_ids: list[int], *, as_target: bool) -> list[int | None]:
    """Index of the whitespace-separated word of ``text`` each token belongs to (None: special token).

    Uses the tokenizer's character offsets when it has them (fast tokenizers) and they describe the
    same tokens as Inseq's; otherwise word starts are read from the tokens' word-start markers
    (``▁`` for SentencePiece, ``Ġ`` for byte-level BPE), or each token is a word if none has one.
    """
    tokenizer = loaded.tokenizer
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}  # an unknown word is still a word
    content = [i for i, token_id in enumerate(token_ids) if token_id not in special]
    word_ids: list[int | None] = [None] * len(token_ids)
    offsets = _content_offsets(tokenizer, text, as_target, special)
    if offsets is not None and [token_id for token_id, _, _ in offsets] == [token_ids[i] for i in content]:
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        starts = [s for s, _ in spans]
        for position, (_, begin, end) in zip(content, offsets, strict=True):
            while begin < end and text[begin].isspace():
                begin += 1
            if begin == end:  # a whitespace-only piece (e.g. a lone "▁") belongs to the word after it
                following = bisect.bisect_left(starts, begin)
                word_ids[position] = following if following < len(spans) else None
                continue
            word = bisect.bisect_right(starts, begin) - 1
            if word >= 0 and begin < spans[word][1]:
                word_ids[position] = word
        return word_ids
    tokens = tokenizer.convert_ids_to_tokens([token_ids[i] for i in content])
    has_markers = any(token.startswith(_WORD_START_MARKERS) for token in tokens)
    word = -1
    for position, token in zip(content, tokens, strict=True):
        if word < 0 or not has_markers or token.startswith(_WORD_START_MARKERS):
            word += 1
        word_ids[position] = word
    return word_ids


def _content_offsets(tokenizer, text: str, as_target: bool, special: set[int]) -> list[tuple[int, int, int]] | None:
    if not getattr(tokenizer, "is_fast", False):
        return None
    encoded = (
        tokenizer(text_target=text, return_offsets_mapping=True)
        if as_target
        else tokenizer(text, return_offsets_mapping=True)
    )
    return [
        (token_id, begin, end)
        for token_id, (begin, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        if token_id not in special
    ]
