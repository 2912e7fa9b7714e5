"""Leave a shared model exactly as a run found it: hooks, training flag, gradients, config, tokenizer.

Attribution (Inseq, Captum) and interventions install hooks on the one model object the Space shares
between requests; whatever such a run does or fails to undo, :func:`model_state_guard` removes the hooks
it added (keeping transformers' own output-capturing hooks), restores the training flag, the config and
tokenizer attributes Inseq sets (``pad_token_id``, ``pad_token``...) and drops parameter gradients.
Callers hold ``loaded.lock`` around it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from attribution.models import LoadedModel

logger = logging.getLogger(__name__)

#: Torch's hook dictionaries on a module (with the flag dictionaries keyed like them): what an attribution
#: run adds to them is removed after it.
_HOOK_DICTS: dict[str, tuple[str, ...]] = {
    "_forward_hooks": ("_forward_hooks_with_kwargs", "_forward_hooks_always_called"),
    "_forward_pre_hooks": ("_forward_pre_hooks_with_kwargs",),
    "_backward_hooks": (),
    "_backward_pre_hooks": (),
}


@contextmanager
def model_state_guard(loaded: LoadedModel) -> Iterator[None]:
    """Leave the model, its config and tokenizer as they were, whatever Inseq does or fails to undo."""
    model, config, tokenizer = loaded.model, loaded.model.config, loaded.tokenizer
    hooks_before = {
        id(module): {name: set(getattr(module, name, {}) or {}) for name in _HOOK_DICTS} for module in model.modules()
    }
    was_training = model.training
    config_before = {name: getattr(config, name, _MISSING) for name in ("pad_token_id", "scale_decoder_outputs")}
    pad_token_before = tokenizer.pad_token
    try:
        yield
    finally:
        removed = _remove_new_hooks(model, hooks_before)
        if removed:
            logger.info("removed %d hook(s) left on %s by a run", removed, loaded.model_id)
        model.train(was_training)
        model.zero_grad(set_to_none=True)
        for name, value in config_before.items():
            if value is _MISSING:
                if hasattr(config, name):
                    delattr(config, name)
            elif getattr(config, name, _MISSING) != value:
                setattr(config, name, value)
        if tokenizer.pad_token != pad_token_before:
            tokenizer.pad_token = pad_token_before


_MISSING = object()


def _remove_new_hooks(model: torch.nn.Module, hooks_before: dict[int, dict[str, set[int]]]) -> int:
    """Remove hooks added since ``hooks_before``, except transformers' own output-capturing hooks."""
    removed = 0
    for module in model.modules():
        before = hooks_before.get(id(module), {})
        for name, flag_names in _HOOK_DICTS.items():
            hooks = getattr(module, name, None)
            if not hooks:
                continue
            for key in [k for k in hooks if k not in before.get(name, set())]:
                hook = hooks[key]
                origin = getattr(hook, "__module__", None) or getattr(getattr(hook, "func", None), "__module__", "")
                if str(origin).startswith("transformers"):
                    continue
                del hooks[key]
                for flag_name in flag_names:
                    getattr(module, flag_name, {}).pop(key, None)
                removed += 1
    return removed


@contextmanager
def exclusive_use(loaded: LoadedModel) -> Iterator[None]:
    """Use the shared model alone and leave it as it was: its lock, :func:`model_state_guard`, and every weight
    accelerate offloaded made resident (code that reads weights directly, as the interventions' engine does,
    must not see the ``meta`` tensors an offloaded module holds between its forward calls)."""
    from attribution.offload import offloaded_weights_loaded

    with loaded.lock, model_state_guard(loaded), offloaded_weights_loaded(loaded.model):
        yield
