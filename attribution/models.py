"""Load any Hugging Face causal LM or seq2seq model, and keep a bounded cache of loaded ones.

The Space loads real Hub models by id; tests and CI load the tiny models bundled in
``examples/models`` by name or path through the very same code path. When the Hub cannot be
reached, loading fails in seconds (not the minutes of retries transformers would spend) with a
message naming the bundled models, unless the model is already in the local Hugging Face cache.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from attribution.bundled import BUNDLED_MODELS, bundled_model_path
from attribution.errors import HubUnreachableError, InvalidInputError, ModelLoadError
from attribution.results import ModelKind, Provenance
from attribution.tokenizer_style import tokenizer_style
from attribution.validation import check_unicode

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Device types a model can be loaded on (``auto`` picks cuda when available).
DEVICE_TYPES = ("cpu", "cuda", "mps")
#: A token covers at most this many characters in any tokenizer we expect; a longer text is refused
#: as too long before it is tokenized (tokenizing megabytes only to count them would be the attack).
MAX_CHARS_PER_TOKEN = 64
_HUB_PROBE_TIMEOUT_S = 3.0
_HUB_PROBE_TTL_S = 60.0


def trust_remote_code_default() -> bool:
    """Remote code is off unless the operator sets ATTRIBUTION_EXPLORER_TRUST_REMOTE_CODE=1."""
    return os.environ.get("ATTRIBUTION_EXPLORER_TRUST_REMOTE_CODE", "").strip().lower() in {"1", "true", "yes"}


@dataclass(eq=False)
class LoadedModel:
    """A model with its tokenizer and what we know about it.

    ``lock`` serialises use of the model object: attribution methods install hooks on it, so two
    requests must never run on the same object at once.
    """

    model_id: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    kind: ModelKind
    revision: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def model_type(self) -> str:
        return self.model.config.model_type

    @property
    def device(self) -> torch.device:
        """Where inputs go: the first parameter's device, or with an accelerate device map the input embeddings'."""
        if getattr(self.model, "hf_device_map", None):
            embeddings = self.model.get_input_embeddings()
            hook = getattr(embeddings, "_hf_hook", None)
            execution_device = getattr(hook, "execution_device", None)
            if execution_device is not None:
                return torch.device(execution_device)
            weight = embeddings.weight
            assert isinstance(weight, torch.Tensor)  # an embedding's weight (nn.Module types attributes loosely)
            return weight.device
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def n_bytes(self) -> int:
        """Memory held by parameters and buffers (what the cache budget counts)."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def max_input_tokens(self) -> int | None:
        """The model's context length in tokens, when the config says it."""
        for name in ("n_positions", "max_position_embeddings", "max_sequence_length", "n_ctx"):
            value = getattr(self.model.config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None

    def provenance(self) -> Provenance:
        return Provenance(
            model_id=self.model_id,
            model_revision=self.revision,
            model_kind=self.kind,
            model_type=self.model_type,
            tokenizer_style=tokenizer_style(self.tokenizer),
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def precheck_text(self, text: str, *, role: str = "input text", max_tokens: int | None = None) -> int | None:
        """Checks that need no tokenizer: valid Unicode, and not far longer than the token limit could allow.

        Returns the token limit that applies (the smaller of ``max_tokens`` and the model's context).
        """
        check_unicode(text, role)
        limits = [x for x in (max_tokens, self.max_input_tokens) if x]
        if not limits:
            return None
        limit = min(limits)
        if len(text) > limit * MAX_CHARS_PER_TOKEN:
            raise InvalidInputError(
                f"The {role} is {len(text):,} characters long, far more than the {limit} tokens {self.model_id} "
                "accepts here. Shorten it."
            )
        return limit

    def validate_text(self, text: str, *, role: str = "input text", max_tokens: int | None = None) -> str:
        """Return ``text`` if it is usable as model input, else raise InvalidInputError.

        Rejects empty or whitespace-only text, text that is not valid Unicode (lone surrogates: what
        invalid UTF-8 becomes on a command line), and text longer than the model's context (or than
        ``max_tokens``, e.g. a Space operator's limit), naming the limit and the actual length. A text
        far longer than any tokenization of the limit could be is refused before tokenizing it.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"The {role} is empty: type some text first.")
        limit = self.precheck_text(text, role=role, max_tokens=max_tokens)
        if limit is not None:
            n_tokens = self.count_tokens(text)
            if n_tokens > limit:
                raise InvalidInputError(
                    f"The {role} is {n_tokens} tokens long; {self.model_id} accepts at most {limit} here. Shorten it."
                )
        return text


def prompt_with_continuation(prompt: str, target: str) -> str:
    """A causal model's target as the whole text it reads: the prompt followed by the continuation.

    ``target`` may already start with the prompt (then it is the whole text) or be the continuation
    alone, joined with one space unless either side has whitespace at the join. Attribution and the
    contribution graph both use this, so the same target gives the same tokens in both.
    """
    return target if target.startswith(prompt) else join_continuation(prompt, target)


def join_continuation(prompt: str, continuation: str) -> str:
    """``prompt`` then ``continuation``, with one space between them unless either has whitespace there."""
    if prompt[-1:].isspace() or continuation[:1].isspace():
        return prompt + continuation
    return f"{prompt} {continuation}"


def decode_text(tokenizer: PreTrainedTokenizerBase, ids: list[int] | torch.Tensor) -> str:
    """The text of one sequence of token ids, special tokens left out.

    ``decode`` is typed for batches as well (``str | list[str]``); one sequence always decodes to one text."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert isinstance(text, str)
    return text


_GENERATION_CLASS_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSeq2SeqLM", "MTModel")


def detect_model_kind(config: PretrainedConfig) -> ModelKind:
    """Tell a seq2seq model from a causal LM by its config; refuse anything else.

    The checkpoint's declared ``architectures`` decide when present: transformers maps encoder-only
    types such as BERT to a causal-LM class too, but a BERT checkpoint was not trained to generate.
    """
    model_type = getattr(config, "model_type", None)
    architectures = getattr(config, "architectures", None) or []
    declared_generator = any(a.endswith(_GENERATION_CLASS_SUFFIXES) for a in architectures)
    if architectures and not declared_generator and not getattr(config, "is_decoder", False):
        raise ModelLoadError(
            f"Model {model_type!r} ({', '.join(architectures)}) is neither a causal language model nor a "
            "sequence-to-sequence model; Attribution Explorer explains text generation only."
        )
    if getattr(config, "is_encoder_decoder", False) or model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "seq2seq"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or declared_generator:
        return "causal"
    raise ModelLoadError(
        f"Model type {model_type!r} is neither a causal language model nor a sequence-to-sequence model "
        "(e.g. a classifier or an encoder-only model like BERT); Attribution Explorer explains text generation only."
    )


def hub_reachable(endpoint: str | None = None) -> bool:
    """Whether the Hub answers a TCP connection within a few seconds (cached for a minute)."""
    if hf_constants.HF_HUB_OFFLINE:
        return False
    endpoint = endpoint or hf_constants.ENDPOINT
    now = time.monotonic()
    cached = _hub_probe_cache.get(endpoint)
    if cached is not None and now - cached[1] < _HUB_PROBE_TTL_S:
        return cached[0]
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=_HUB_PROBE_TIMEOUT_S):
            reachable = True
    except OSError:
        reachable = False
    _hub_probe_cache[endpoint] = (reachable, now)
    return reachable


_hub_probe_cache: dict[str, tuple[bool, float]] = {}


def _bundled_hint() -> str:
    names = ", ".join(BUNDLED_MODELS)
    return f"Bundled models that work offline: {names}."  # no server path: this reaches the app's users


def not_on_hub_error(name: str, *, hub_unreachable: bool) -> ModelLoadError:
    """What a user is told about a Hub id that does not resolve (the same words whatever the reason)."""
    if hub_unreachable:
        return HubUnreachableError(
            f"Cannot load {name!r}: the Hugging Face Hub is unreachable (or HF_HUB_OFFLINE=1) and the model "
            f"is not in the local cache. {_bundled_hint()}"
        )
    return ModelLoadError(f"Unknown model {name!r}: no such model on the Hugging Face Hub.")


def check_hub_id(name: str) -> str:
    """``name`` if it is a syntactically valid Hub model id (``name`` or ``user/name``), else a user error."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        shown = repr(name) if len(name) <= 100 else f"{name[:100]!r}…"
        raise InvalidInputError(
            f"{shown} is not a Hugging Face model id: use the form 'user/model' (letters, digits, '-', '_', '.')."
        ) from None
    return name


def resolve_model_source(name_or_path: str, *, allow_local: bool = True) -> tuple[str, bool]:
    """Map a bundled short name, a local folder or a Hub id to (what from_pretrained gets, is_local).

    With ``allow_local=False`` (ids typed into the Space) the name must be a Hub id and is never
    resolved against the local file system here (see :func:`load_model_uncached` for names that
    collide with a relative path).
    """
    name = check_unicode(name_or_path.strip(), "model id")
    if not name:
        raise InvalidInputError("No model given: pass a Hugging Face model id or a local folder. " + _bundled_hint())
    if not allow_local:
        return check_hub_id(name), False
    if name in BUNDLED_MODELS:
        path = bundled_model_path(name)
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"The bundled model {name!r} is missing from {path}; run `python examples/train_tiny_models.py`."
            )
        return str(path), True
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelLoadError(f"{name!r} is not a model folder: it has no config.json.")
        return str(path), True
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"No such model folder: {name!r}.")
    return name, False


def resolve_device(device: str) -> str:
    """A usable torch device string for ``device`` (cpu, cuda, cuda:N, mps or auto), else a user error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        shown = repr(device) if len(str(device)) <= 40 else "this device"
        raise InvalidInputError(f"Unknown device {shown}: use cpu, cuda, cuda:N, mps or auto.")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device {device!r} was asked for but no CUDA GPU is available here; use 'cpu'.")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)."
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("device 'mps' was asked for but Apple's MPS is not available here; use 'cpu'.")
    return device


def _load_config(source: str, *, is_local: bool, revision: str | None, trust_remote_code: bool) -> PretrainedConfig:
    local_only = not is_local and not hub_reachable()
    try:
        return AutoConfig.from_pretrained(
            source, revision=revision, trust_remote_code=trust_remote_code, local_files_only=local_only
        )
    except OSError as error:
        if local_only:
            raise not_on_hub_error(source, hub_unreachable=True) from error
        message = str(error)
        if "is not a valid model identifier" in message or "not found" in message.lower() or "404" in message:
            raise not_on_hub_error(source, hub_unreachable=False) from error
        if "gated" in message.lower() or "401" in message or "403" in message:
            raise ModelLoadError(
                f"Model {source!r} is gated or private: log in with a token that has access (HF_TOKEN)."
            ) from error
        raise ModelLoadError(f"Cannot load {source!r}: {message.splitlines()[0]}") from error
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise ModelLoadError(
                f"Model {source!r} needs custom code from its repository; this deployment does not run remote code "
                "(an operator can allow it with ATTRIBUTION_EXPLORER_TRUST_REMOTE_CODE=1)."
            ) from error
        raise ModelLoadError(f"Cannot load {source!r}: {error}") from error


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how: what :func:`load_model` takes, the one list of loading options.

    Plain data: a corpus run's Ray worker loads the same model on its own machine from it, and a run's
    manifest records :meth:`defining`. ``model_id``: a Hub id, a local folder or a bundled model name.
    ``eager_attention`` asks for the eager attention implementation, which returns attention
    probabilities (the ``attention`` method and contribution graphs need them). ``trust_remote_code``
    defaults to the operator setting (off). ``allow_local=False`` accepts Hub ids only and never reads a
    local path (names typed by users of a shared deployment). ``device_map`` / ``max_memory`` /
    ``offload_folder`` place a model larger than one device with accelerate (``device`` is then
    ignored). ``threads`` sets torch's CPU threads in the process that loads the model (None: torch's
    default; a corpus run's Ray workers use their CPU reservation unless it is given).
    """

    model_id: str
    revision: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    device_map: str | dict[str, Any] | None = None
    max_memory: dict[int | str, int | str] | None = None
    offload_folder: str | Path | None = None
    threads: int | None = None
    trust_remote_code: bool | None = None
    eager_attention: bool = True
    allow_local: bool = True

    def defining(self) -> dict[str, Any]:
        """What changes the numbers (a resumed corpus run must match it); placement and threads do not."""
        return {"model_id": self.model_id, "revision": self.revision, "dtype": self.dtype}

    def cache_key(self) -> tuple:
        """What tells two loaded models apart in a :class:`ModelCache` (threads do not change the model)."""
        key: tuple = (
            self.model_id.strip(),
            self.revision,
            self.device,
            self.dtype,
            self.eager_attention,
            self.allow_local,
        )
        if self.device_map is not None:
            device_map = self.device_map
            placement = (
                device_map if isinstance(device_map, str) else tuple(sorted(device_map.items())),
                self.max_memory,
            )
            key += (repr(placement), str(self.offload_folder))
        return key


def model_spec(model: ModelSpec | str, **options: Any) -> ModelSpec:
    """``model`` as a :class:`ModelSpec`: a spec as it is, or a name with ``options`` (the spec's other fields)."""
    if isinstance(model, ModelSpec):
        if options:
            raise TypeError(f"Give the loading options in the ModelSpec, not as {', '.join(sorted(options))}=.")
        return model
    return ModelSpec(model, **options)


def load_model_uncached(spec: ModelSpec) -> LoadedModel:
    """Load a model and tokenizer (see :func:`load_model`, which adds caching)."""
    if spec.dtype not in DTYPES:
        raise InvalidInputError(f"Unknown dtype {spec.dtype!r}; choose one of {', '.join(DTYPES)}.")
    if spec.device_map is None and (spec.max_memory is not None or spec.offload_folder is not None):
        raise InvalidInputError("max_memory and offload_folder place a model with a device map: give device_map too.")
    device = resolve_device(spec.device)
    trust = trust_remote_code_default() if spec.trust_remote_code is None else spec.trust_remote_code
    source, is_local = resolve_model_source(spec.model_id, allow_local=spec.allow_local)
    if not spec.allow_local and os.path.lexists(source):
        # transformers would read this relative folder or config file from the working directory instead of
        # the Hub: answer as a missing Hub model does, so the answer tells nothing about the file system.
        raise not_on_hub_error(source, hub_unreachable=not hub_reachable())
    if spec.threads:
        torch.set_num_threads(spec.threads)
    revision = spec.revision
    config = _load_config(source, is_local=is_local, revision=revision, trust_remote_code=trust)
    kind = detect_model_kind(config)
    auto_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    local_only = not is_local and not hub_reachable()
    options: dict[str, Any] = {
        "revision": revision,
        "trust_remote_code": trust,
        "local_files_only": local_only,
        "dtype": DTYPES[spec.dtype],
    }
    if spec.eager_attention:
        options["attn_implementation"] = "eager"
    if spec.device_map is not None:  # accelerate spreads the layers over devices (and CPU / disk offload)
        options.update(device_map=spec.device_map, max_memory=spec.max_memory, offload_folder=spec.offload_folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=trust, local_files_only=local_only
        )
        model = auto_class.from_pretrained(source, **options)
    except Exception as error:  # files on disk or from the Hub can be broken in any way (SafetensorError, ...)
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise ModelLoadError(f"Cannot load {spec.model_id!r}: {lines[0][:300]}") from error
    if spec.device_map is None:
        model.to(device)  # type: ignore[arg-type]  # transformers' wrapper of to() types its argument as a model
    model.eval()
    return LoadedModel(model_id=spec.model_id.strip(), model=model, tokenizer=tokenizer, kind=kind, revision=revision)


class ModelCache:
    """Least-recently-used cache of loaded models, bounded by count and by bytes.

    Thread-safe: concurrent requests for the same model wait for one load instead of loading it
    twice. A model larger than the byte budget on its own is still loaded (and evicts all others).
    """

    def __init__(self, max_models: int = 2, max_bytes: int = 8 * 1024**3) -> None:
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, key: tuple) -> bool:
        return key in self._models

    @property
    def n_bytes(self) -> int:
        return sum(m.n_bytes for m in self._models.values())

    def get_or_load(self, key: tuple, loader: Callable[[], LoadedModel]) -> LoadedModel:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            loaded = loader()
            with self._lock:
                self._models[key] = loaded
                self._evict(keep=key)
                self._key_locks.pop(key, None)
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
        gc.collect()

    def _evict(self, keep: tuple) -> None:
        evicted = False
        while len(self._models) > 1 and (
            len(self._models) > self.max_models or sum(m.n_bytes for m in self._models.values()) > self.max_bytes
        ):
            oldest = next(k for k in self._models if k != keep)
            del self._models[oldest]
            evicted = True
        if evicted:
            gc.collect()


DEFAULT_CACHE = ModelCache(
    max_models=int(os.environ.get("ATTRIBUTION_EXPLORER_CACHE_MODELS", "2")),
    max_bytes=int(float(os.environ.get("ATTRIBUTION_EXPLORER_CACHE_GB", "8")) * 1024**3),
)


def load_model(model: ModelSpec | str, *, cache: ModelCache | None = DEFAULT_CACHE, **options: Any) -> LoadedModel:
    """Load a causal LM or seq2seq model by Hub id, local folder or bundled name, reusing cached ones.

    ``model`` is a :class:`ModelSpec`, or a name with the spec's other fields as ``options``
    (``load_model("tiny-ioi-gpt2", dtype="bfloat16")`` is ``load_model(ModelSpec("tiny-ioi-gpt2",
    dtype="bfloat16"))``). Raises :class:`~attribution.errors.ModelLoadError` (or its subclass
    ``HubUnreachableError``) with a message meant for the user.

    Models larger than one device: ``device_map="auto"`` (or an explicit module → device map) lets
    accelerate place the layers over the GPUs, then CPU (``max_memory``, e.g. ``{0: "20GiB", "cpu":
    "60GiB"}``) and disk (``offload_folder``); ``device`` is then ignored. Attribution and the
    contribution graph run with accelerate's hooks in place (``tests/attribution/test_corpus_sharding.py``).
    """
    spec = model_spec(model, **options)
    if cache is None:
        return load_model_uncached(spec)
    return cache.get_or_load(spec.cache_key(), lambda: load_model_uncached(spec))
