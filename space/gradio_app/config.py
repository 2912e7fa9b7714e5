"""The operator config of the Space: which models are offered, limits, demo mode, device.

A Space operator edits a JSON file (``space/config.json`` by default, or ``--config path`` /
the ``ATTRIBUTION_EXPLORER_SPACE_CONFIG`` environment variable) instead of the code. Unknown keys
are refused so a typo does not silently fall back to a default.

The file may hold hardware *profiles* (``"profiles": {"cpu-basic": {...}, "zero-gpu": {...}, ...}``):
each overrides the file's top-level keys for one kind of Space hardware (models, methods and their
parameters, token limits, budgets), and ``"profile"`` names the one applied unless ``--profile`` or the
``ATTRIBUTION_EXPLORER_PROFILE`` environment variable (a Space variable) names another. One file then
describes every hardware the demo runs on, and a test holds each profile's offered runs to its caps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from attribution.bundled import BUNDLED_MODELS, bundled_model_path
from attribution.errors import InvalidInputError
from attribution.models import DTYPES

DEFAULT_CONFIG_PATH = Path(__file__).parents[1] / "config.json"  # space/config.json, beside the Space card
CONFIG_ENV_VAR = "ATTRIBUTION_EXPLORER_SPACE_CONFIG"
PROFILE_ENV_VAR = "ATTRIBUTION_EXPLORER_PROFILE"
#: Keys of the file that choose a profile rather than set a value (never inside a profile).
PROFILE_KEYS = ("profile", "profiles")


@dataclass(frozen=True)
class SpaceConfig:
    """What the operator decides; see ``space/config.json`` and ``docs/config.md`` for each key."""

    #: Models offered in the model dropdowns (Hub ids or local folders), first is not special.
    models: tuple[str, ...] = ("gpt2", "Helsinki-NLP/opus-mt-en-de")
    #: Model selected when the app opens (must be one of ``models``).
    default_model: str = "gpt2"
    #: Demo mode: only the offered models, no free-text model ids, ``max_input_tokens`` enforced.
    demo_mode: bool = False
    #: Whether users may type any Hub model id (ignored, i.e. off, in demo mode).
    allow_custom_models: bool = True
    #: Longest accepted input (prompt, source or target text) in tokens; ``None`` = the model's context.
    max_input_tokens: int | None = 256
    #: Tokens generated when no target text is given.
    max_new_tokens: int = 20
    #: Inseq methods offered; empty = every method the installed Inseq provides.
    methods: tuple[str, ...] = ()
    default_method: str = "saliency"
    #: Per-method Inseq parameters, e.g. ``{"integrated_gradients": {"n_steps": 16}}`` to bound the cost.
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: cpu, cuda, cuda:N or auto.
    device: str = "cpu"
    dtype: str = "float32"
    #: Loaded models kept in memory at once (least recently used ones are dropped).
    cache_max_models: int = 2
    cache_max_gb: float = 8.0
    #: Model runs at once per group (attribute + compare; contribution graphs), the rest wait; queue length.
    concurrency_limit: int = 2
    max_queue_size: int = 64
    #: Requests at once that need no model (graph node/edge details, threshold re-walks, exports).
    light_concurrency_limit: int = 8
    #: Sessions whose state Gradio keeps (least recently used dropped first). Each holds ~10-50 KB here (no
    #: deep-link copies: sessions.py), and every raw API request opens one: this bounds that memory.
    max_sessions: int = 1000
    #: Seconds one request's model work may take before it is stopped cleanly (None: no limit).
    time_budget_s: float | None = 30.0
    #: Most model passes one request may need, estimated before running (attribution.cost; None: no cap).
    max_model_passes: int | None = 500
    #: The same for interventions (ablation, patching sweeps, route and Compare faithfulness), whose passes are
    #: forward passes of batched edited runs rather than attribution's mostly gradient passes (None: no cap).
    max_intervention_passes: int | None = 2000
    #: Largest result JSON a request may send back (export, graph details), in MB.
    max_result_mb: float = 16.0
    #: Largest request body (MB) any request but a file upload may send: a larger one is answered 413 before it is
    #: read (Gradio reads a body whole). The Export tab sends every tab's result JSON at once.
    max_request_mb: float = 64.0
    #: Largest file one upload may hold (MB): Gradio's ``max_file_size``, and what the corpus reader accepts.
    max_upload_mb: float = 2.0
    #: Uploaded files kept at most (MB in all; the oldest go first); they also go after ``export_max_age_s``.
    uploads_max_mb: float = 200.0
    #: Export files are deleted after this many seconds, and the oldest first beyond this total size (MB).
    export_max_age_s: float = 3600.0
    export_max_mb: float = 500.0
    #: A Hub push taking longer than this is abandoned (and the user told what was left).
    hub_push_timeout_s: float = 60.0
    #: Example caching: "lazy" caches each example's output on first use, "eager" at start-up.
    cache_examples: Literal["lazy", "eager", "off"] = "lazy"
    #: Hub endpoint for pushes (``None``: HF_ENDPOINT or https://huggingface.co).
    hub_endpoint: str | None = None
    #: Models offered when the Hub cannot be reached (the bundled tiny ones).
    offline_models: tuple[str, ...] = field(default=BUNDLED_MODELS)
    #: Records an uploaded corpus (Compare tab) may hold; 0 turns the corpus upload off.
    max_corpus_rows: int = 20
    #: Seconds one corpus upload may run; it then stops and reports the records finished so far.
    corpus_time_budget_s: float = 300.0
    #: The hardware profile these values come from (``None``: the file has none); shown, never read for limits.
    profile: str | None = None
    #: Load every offered model at start-up (ZeroGPU moves the models it finds loaded at start-up onto its GPU).
    preload_models: bool = False
    #: ZeroGPU: seconds of GPU one model pass is assumed to take; a request asks for its estimated passes times
    #: this (at most ``time_budget_s``). See :mod:`space.gradio_app.zerogpu`.
    gpu_seconds_per_pass: float = 0.05

    def __post_init__(self) -> None:
        if not self.models:
            raise InvalidInputError("config: 'models' must list at least one model")
        if self.default_model not in self.models:
            raise InvalidInputError(f"config: default_model {self.default_model!r} is not in 'models'")
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"config: dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.demo_mode and not self.max_input_tokens:
            raise InvalidInputError("config: demo_mode needs a max_input_tokens limit")
        if self.cache_examples not in ("lazy", "eager", "off"):
            raise InvalidInputError("config: cache_examples must be 'lazy', 'eager' or 'off'")
        for name in (
            "cache_max_models",
            "concurrency_limit",
            "max_queue_size",
            "max_new_tokens",
            "light_concurrency_limit",
            "max_sessions",
            "max_model_passes",
            "max_intervention_passes",
        ):
            value = getattr(self, name)
            if value is None and name in ("max_model_passes", "max_intervention_passes"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"config: {name} must be at least 1 (a whole number), not {value!r}")
        for name in (
            "time_budget_s",
            "max_result_mb",
            "max_request_mb",
            "max_upload_mb",
            "uploads_max_mb",
            "export_max_age_s",
            "export_max_mb",
            "hub_push_timeout_s",
            "corpus_time_budget_s",
            "gpu_seconds_per_pass",
        ):
            value = getattr(self, name)
            if value is None and name == "time_budget_s":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidInputError(f"config: {name} must be a positive number, not {value!r}")
        rows = self.max_corpus_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise InvalidInputError(f"config: max_corpus_rows must be a whole number >= 0, not {rows!r}")

    @property
    def custom_models_allowed(self) -> bool:
        return self.allow_custom_models and not self.demo_mode

    @property
    def max_result_bytes(self) -> int:
        return int(self.max_result_mb * 1024**2)

    @property
    def max_request_bytes(self) -> int:
        """In millions of bytes, as the refusal counts ("64.0 MB")."""
        return int(self.max_request_mb * 1e6)

    @property
    def max_upload_bytes(self) -> int:
        """In millions of bytes, as the corpus reader's messages count ("2.0 MB")."""
        return int(self.max_upload_mb * 1e6)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, profile: str | None = None) -> SpaceConfig:
        """The config of ``data`` with the profile ``profile`` (else the environment's, else the file's) applied."""
        values = apply_profile(data, profile or os.environ.get(PROFILE_ENV_VAR) or data.get("profile"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(
                f"config: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path | None = None, *, profile: str | None = None) -> SpaceConfig:
        """Read ``path``, else the file named by the environment variable, else the bundled default."""
        return cls.from_dict(read_config_file(path), profile=profile)


def profile_names(data: dict[str, Any]) -> tuple[str, ...]:
    """The hardware profiles a config file defines, in its order."""
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise InvalidInputError("config: 'profiles' must map each profile name to an object of keys")
    return tuple(profiles)


def apply_profile(data: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """The file's top-level keys overridden by the profile ``profile``'s (none: the top-level keys as they are)."""
    names = profile_names(data)
    base = {k: v for k, v in data.items() if k not in PROFILE_KEYS}
    if profile is None:
        return base
    if profile not in names:
        offered = ", ".join(names) or "none"
        raise InvalidInputError(f"config: unknown profile {profile!r}; this file defines: {offered}")
    overrides = data["profiles"][profile]
    nested = sorted(set(overrides) & set(PROFILE_KEYS))
    if nested:
        raise InvalidInputError(f"config: profile {profile!r} may not set {', '.join(nested)}")
    return {**base, **overrides, "profile": profile}


def read_config_file(path: str | Path | None = None) -> dict[str, Any]:
    """The JSON object of ``path``, else of the file named by the environment variable, else of the bundled default."""
    path = Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInputError(f"config: cannot read {path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"config: {path} is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise InvalidInputError(f"config: {path} must hold a JSON object")
    return data


@dataclass(frozen=True)
class ModelOffer:
    """The models the running app offers, decided once at start-up from the config and the Hub."""

    models: tuple[str, ...]
    default_model: str
    custom_allowed: bool
    notice: str  # shown at the top of the app ("" when nothing to say)


def available_bundled_models(names: tuple[str, ...] = BUNDLED_MODELS) -> tuple[str, ...]:
    """The bundled models actually present on disk (they may not be trained yet in a fresh checkout)."""
    return tuple(name for name in names if (bundled_model_path(name) / "config.json").is_file())


def offered_models(config: SpaceConfig, *, hub_reachable: bool) -> ModelOffer:
    """Offline: the bundled tiny models only. Online: the config's models (+ the bundled ones for the examples)."""
    bundled = available_bundled_models(tuple(config.offline_models))
    if hub_reachable:
        models = tuple(dict.fromkeys([*config.models, *bundled]))
        return ModelOffer(models, config.default_model, config.custom_models_allowed, "")
    local = tuple(m for m in config.models if Path(m).expanduser().is_dir())
    models = tuple(dict.fromkeys([*bundled, *local]))
    if not models:
        raise InvalidInputError(
            "The Hugging Face Hub is unreachable and no bundled model is present: "
            "run `python examples/train_tiny_models.py` or list local model folders in the config."
        )
    default = config.default_model if config.default_model in models else models[0]
    unavailable = [m for m in config.models if m not in models]
    notice = (
        "The Hugging Face Hub is unreachable from this machine, so the app offers only the models it has locally "
        f"({', '.join(models)})"
        + (f" instead of {', '.join(unavailable)}." if unavailable else "; a typed Hub id cannot be loaded.")
    )
    return ModelOffer(models, default, False, notice)
