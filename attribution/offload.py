"""Models placed by accelerate with CPU or disk offload: bring the offloaded weights in while we read them.

accelerate keeps an offloaded module's parameters on the ``meta`` device and loads them only around
that module's own forward call. Code that reads weights directly (the contribution graph's
decomposition multiplies value vectors by the output projections after the forward pass) must
load them first: :func:`offloaded_weights_loaded` does that with accelerate's own hooks and puts
them back afterwards. Models without offloaded parameters pass through untouched (accelerate is
not even imported).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from torch import nn


def offloaded_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose parameters accelerate offloaded (empty for a model loaded without a device map)."""
    if not getattr(model, "hf_device_map", None):
        return []
    from accelerate.utils import has_offloaded_params

    return [module for module in model.modules() if has_offloaded_params(module)]


@contextmanager
def offloaded_weights_loaded(model: nn.Module) -> Iterator[None]:
    """Within this block every offloaded parameter is a real tensor on its module's execution device.

    The whole model's weights are then resident at once (on the execution devices), so a model
    offloaded because it does not fit must still fit there for this long.
    """
    modules = offloaded_modules(model)
    if not modules:
        yield
        return
    from accelerate.utils import align_module_device

    with ExitStack() as stack:
        for module in modules:
            stack.enter_context(align_module_device(module))
        yield
