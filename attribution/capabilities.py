"""Which Inseq attribution method runs on which model architecture: the single source of truth.

Inseq 0.7.1 under transformers 5 does not run every method on every architecture. Rather than let
a user meet a stack trace halfway through a run (and a model object left with hooks on it), every
request is checked here first and refused with a message that names the methods that do work.

The table is not a guess: ``tests/attribution/test_capabilities.py`` runs every method on a random-initialised
model of every family in :data:`TESTED_FAMILIES` and checks that each cell marked as working gives
finite scores of the right shape and each refused cell is refused. Families outside the tested
set follow their model kind (causal or seq2seq); methods restricted to named families are refused
for them.

``python -m attribution.capabilities`` prints the table as Markdown (for ``docs/feature-attribution.md``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attribution.errors import InvalidInputError, UnsupportedError
from attribution.results import ModelKind

#: Architecture families the capability test runs on (transformers ``model_type`` names).
TESTED_FAMILIES: dict[str, ModelKind] = {
    "gpt2": "causal",
    "gpt_neox": "causal",
    "opt": "causal",
    "llama": "causal",
    "qwen2": "causal",
    "mistral": "causal",
    "gemma": "causal",
    "qwen3": "causal",
    "gemma2": "causal",
    "gemma3_text": "causal",
    "olmo2": "causal",
    "phi3": "causal",
    "falcon": "causal",
    "gpt_bigcode": "causal",
    "bloom": "causal",
    "marian": "seq2seq",
    "bart": "seq2seq",
    "m2m_100": "seq2seq",
    "mbart": "seq2seq",
    "t5": "seq2seq",
    "mt5": "seq2seq",
    "umt5": "seq2seq",
}


@dataclass(frozen=True)
class MethodSpec:
    """What we know about one Inseq attribution method.

    - ``family_only``: when set, the method runs only on these model types (all others refused
      with ``refusal``); otherwise it runs on every model of the kinds in ``kinds`` except the
      model types in ``family_excluded`` (refused with ``refusal``).
    - ``family_refusals``: model types refused with their own reason (checked first).
    - ``requires``: importable modules the method needs at run time (optional dependencies).
    - ``final_step``: Inseq computes it in one pass at the last step and refuses step scores with it;
      we then compute step scores in a separate pass (method ``dummy``).
    - ``target_side_on_seq2seq``: whether Inseq can attribute to the decoder prefix of a seq2seq
      model too (``attribute_target=True``); when False only source scores are produced and the
      target-side matrix is all NaN.
    - ``fast_params``: parameters that keep the method cheap in tests and benchmarks.
    """

    name: str
    description: str
    kinds: frozenset[ModelKind] = frozenset({"causal", "seq2seq"})
    family_only: frozenset[str] | None = None
    family_excluded: frozenset[str] = frozenset()
    refusal: str = ""
    family_refusals: Mapping[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    final_step: bool = False
    target_side_on_seq2seq: bool = True
    fast_params: Mapping[str, Any] = field(default_factory=dict)


_SOURCE_ONLY = "Inseq cannot attribute the decoder prefix with this method, so seq2seq results have source scores only"
_LAYER_HOOK_FAILS = (
    "Inseq 0.7.1's layer methods never see this architecture's embedding layer run under transformers 5 "
    "(Captum: 'Forward hook did not obtain any outputs')"
)
_LAYER_BASELINE_BROKEN = (
    "under transformers 5, Inseq 0.7.1 returns all-zero scores for it on decoder-only and Marian models and "
    "fails on BART and T5 (and their relatives mBART, M2M-100, mT5, UMT5); use integrated_gradients instead"
)

#: Offered methods, in the order a user should meet them (cheap and common first).
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("saliency", "gradient of the output w.r.t. input embeddings (Simonyan et al. 2014)"),
        MethodSpec("input_x_gradient", "gradient x input embedding"),
        MethodSpec(
            "integrated_gradients",
            "path integral of gradients from a baseline (Sundararajan et al. 2017)",
            fast_params={"n_steps": 4, "internal_batch_size": 8},
        ),
        MethodSpec("deeplift", "DeepLIFT rescale rule (Shrikumar et al. 2017)"),
        MethodSpec("gradient_shap", "expected gradients over noisy baselines", fast_params={"n_samples": 3}),
        MethodSpec(
            "discretized_integrated_gradients",
            "integrated gradients along word-embedding anchors (Sanyal & Ren 2021)",
            requires=("sklearn",),
            fast_params={"n_steps": 4},
        ),
        MethodSpec(
            "sequential_integrated_gradients",
            "integrated gradients one word at a time (Enguehard 2023)",
            target_side_on_seq2seq=False,
            fast_params={"n_steps": 4},
        ),
        MethodSpec(
            "layer_gradient_x_activation",
            "gradient x activation at the embedding layer",
            family_excluded=frozenset({"bart", "t5", "mt5", "umt5", "m2m_100", "mbart"}),
            refusal=_LAYER_HOOK_FAILS,
            target_side_on_seq2seq=False,
        ),
        MethodSpec(
            "layer_integrated_gradients",
            "integrated gradients at the embedding layer output",
            family_only=frozenset(),
            refusal=_LAYER_BASELINE_BROKEN,
            target_side_on_seq2seq=False,  # Inseq's layer methods refuse attribute_target=True
        ),
        MethodSpec(
            "layer_deeplift",
            "DeepLIFT at the embedding layer",
            family_only=frozenset(),
            refusal=_LAYER_BASELINE_BROKEN,
            target_side_on_seq2seq=False,
        ),
        MethodSpec("attention", "attention weights, mean over heads and layers", final_step=True),
        MethodSpec(
            "occlusion",
            "change of the output when a token is replaced by the baseline (Zeiler & Fergus 2014)",
        ),
        MethodSpec(
            "lime",
            "local linear surrogate on perturbed inputs (Ribeiro et al. 2016)",
            requires=("sklearn",),
            target_side_on_seq2seq=False,
            fast_params={"n_samples": 10},
        ),
        MethodSpec(
            "value_zeroing",
            "change of the output when a token's value vectors are zeroed (Mohebbi et al. 2023)",
            family_only=frozenset({"t5", "mt5", "falcon"}),
            refusal=(
                "Inseq 0.7.1's value_zeroing cannot patch this architecture's attention under transformers 5 "
                "(it only works on T5, mT5 and Falcon here)"
            ),
            family_refusals={
                "bloom": (
                    "Inseq 0.7.1's value_zeroing returns all-zero scores on BLOOM (whose attention module adds the "
                    "residual stream itself)"
                )
            },
            final_step=True,
        ),
        MethodSpec(
            "reagent",
            "replacement-based rationales (Zhao & Shan 2024)",
            family_only=frozenset(),
            refusal=(
                "reagent needs NLTK and its tagger data downloaded at run time, which this offline deployment cannot do"
            ),
        ),
    )
}

#: Inseq's step scores we offer. Names starting with ``contrast_`` need a contrast target.
STEP_SCORES: tuple[str, ...] = (
    "probability",
    "logit",
    "entropy",
    "crossentropy",
    "perplexity",
    "contrast_prob",
    "contrast_logits",
    "contrast_prob_diff",
    "contrast_logits_diff",
)
#: Step scores that compare the target with the contrast target.
CONTRASTIVE_STEP_SCORES = frozenset({"contrast_prob", "contrast_logits", "contrast_prob_diff", "contrast_logits_diff"})


def missing_requirements(spec: MethodSpec) -> list[str]:
    """Modules ``spec`` needs that are not installed here."""
    return [module for module in spec.requires if importlib.util.find_spec(module) is None]


def refusal_reason(method: str, kind: ModelKind, model_type: str) -> str | None:
    """Why ``method`` cannot run on a ``kind`` model of ``model_type``, or None when it can."""
    spec = METHODS[method]
    if model_type in spec.family_refusals:
        return spec.family_refusals[model_type]
    if (spec.family_only is not None and model_type not in spec.family_only) or model_type in spec.family_excluded:
        return spec.refusal
    if kind not in spec.kinds:
        return spec.refusal or f"{method} does not support {kind} models"
    missing = missing_requirements(spec)
    if missing:
        return f"{method} needs {', '.join(missing)} (pip install 'attribution-explorer[sklearn]')"
    return None


def supported_methods(kind: ModelKind, model_type: str) -> list[str]:
    """The methods that run on a ``kind`` model of ``model_type``, in :data:`METHODS` order."""
    return [name for name in METHODS if refusal_reason(name, kind, model_type) is None]


def runnable_methods() -> list[str]:
    """The methods that run here on at least one tested architecture (what the app and ``attribute --help``
    offer), in :data:`METHODS` order: a method refused on every one (``reagent`` offline) or missing its
    optional dependencies is left out."""
    return [
        name
        for name in METHODS
        if any(refusal_reason(name, kind, family) is None for family, kind in TESTED_FAMILIES.items())
    ]


def check_method(method: str, kind: ModelKind, model_type: str) -> MethodSpec:
    """Return the spec of ``method`` or raise the error a user should see (unknown or unsupported)."""
    if method in METHODS and (reason := refusal_reason(method, kind, model_type)) is None:
        return METHODS[method]
    working = ", ".join(supported_methods(kind, model_type))
    if method not in METHODS:
        raise InvalidInputError(f"Unknown attribution method {method!r}; choose one of: {working}.")
    raise UnsupportedError(
        f"{method} is not available for {model_type} models: {reason}. Methods that work: {working}."
    )


def check_request(
    method: str, step_scores: Sequence[str], *, target: str | None, contrast_target: str | None
) -> list[str]:
    """The checks that need no model (a known method, known step scores, a target for a contrast target).

    Run before anything is loaded, so a typo is reported at once. Returns the step scores without
    duplicates. Whether the method runs on the model's architecture is :func:`check_method`'s job.
    """
    if method not in METHODS:
        raise InvalidInputError(f"Unknown attribution method {method!r}; choose one of: {', '.join(METHODS)}.")
    if isinstance(step_scores, str):
        step_scores = [step_scores]
    names = list(dict.fromkeys(step_scores))
    unknown = [name for name in names if name not in STEP_SCORES]
    if unknown:
        raise InvalidInputError(f"Unknown step score {unknown[0]!r}; choose from: {', '.join(STEP_SCORES)}.")
    contrastive = [name for name in names if name in CONTRASTIVE_STEP_SCORES]
    if contrastive and contrast_target is None:
        raise InvalidInputError(f"The step score {contrastive[0]!r} compares with a contrast target: give one.")
    if contrast_target is not None and target is None:
        raise InvalidInputError("A contrast target needs a target to contrast it with: give both.")
    return names


def markdown_table(families: Mapping[str, ModelKind] = TESTED_FAMILIES) -> str:
    """The capability table (methods x families) as Markdown, with the reasons for refusals."""
    header = "| method | " + " | ".join(families) + " |"
    lines = [header, "|" + "---|" * (len(families) + 1)]
    notes: dict[str, int] = {}
    for name, spec in METHODS.items():
        cells = []
        for family, kind in families.items():
            reason = refusal_reason(name, kind, family)
            if reason is None:
                partial = kind == "seq2seq" and not spec.target_side_on_seq2seq
                cells.append("source only" if partial else "yes")
            else:
                number = notes.setdefault(reason, len(notes) + 1)
                cells.append(f"no ({number})")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"({number}) {reason}." for reason, number in notes.items())
    lines.append(f'\n"source only": {_SOURCE_ONLY}.')
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
