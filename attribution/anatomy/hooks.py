"""One generic way to observe and edit named sites during forward passes: :func:`hooked`.

    with hooked(spec, {Site("decoder", 2, "attn.probs"): keep, "decoder.2.ffn.out": zero_it}):
        model(**inputs)

Each function is called as ``function(activation, site)`` when the pass reaches the site (the
activation in the site's layout, :mod:`attribution.anatomy.sites`); a tensor it returns replaces the
activation, None leaves it. Functions on the same module run in forward order (``attn.probs`` before
``attn.out``), one torch hook per module and stage. The graph's capture reads with it, the
interventions engine reads and edits with it; every hook it installed is gone when the block is left,
exceptions included (a time budget may stop a pass inside: the model must be left clean).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

from torch import nn

from attribution.anatomy.adapters import ArchitectureSpec
from attribution.anatomy.places import Call, Place, place
from attribution.anatomy.sites import Site

#: ``function(activation, site)`` -> a replacement of the activation, or None to leave it.
SiteFunction = Callable[[Any, Site], Any]
_Entry = tuple[Site, Place, SiteFunction]
#: A site as :func:`hooked` takes it: a :class:`Site`, its name, or either.
_SiteKey = TypeVar("_SiteKey", bound=Site | str)


def _run(entries: list[_Entry], call: Call) -> bool:
    """Call each site's function on ``call``; whether any replaced its activation."""
    changed = False
    for site, where, function in entries:
        replacement = function(where.read(call), site)
        if replacement is not None:
            if where.write is None:
                raise ValueError(f"{site} is read only: its function must return None.")
            where.write(call, replacement)
            changed = True
    return changed


def _register(stack: ExitStack, module: nn.Module, hook: Callable, *, stage: str, prepend: bool) -> None:
    if stage == "input":
        handle = module.register_forward_pre_hook(hook, with_kwargs=True, prepend=prepend)
    else:
        handle = module.register_forward_hook(hook, with_kwargs=True, prepend=prepend)
    stack.callback(handle.remove)


def _install(stack: ExitStack, entries: list[_Entry], batches: dict[int, int], prepend: bool) -> None:
    """One torch hook calling ``entries`` (sites of one module and stage) in forward order."""
    where = entries[0][1]
    entries = sorted(entries, key=lambda entry: entry[0].order)

    def pre(_module, args, kwargs):
        call = Call(args, kwargs, batch=batches.get(id(where.block)))
        return (call.args, call.kwargs) if _run(entries, call) else None

    def post(_module, args, kwargs, output):
        call = Call(args, kwargs, output, batch=batches.get(id(where.block)))
        return call.output if _run(entries, call) else None

    _register(stack, where.module, pre if where.stage == "input" else post, stage=where.stage, prepend=prepend)


def _track_batch(stack: ExitStack, block: nn.Module, batches: dict[int, int]) -> None:
    """Record the batch size ``block`` is called with, for the sites inside it that flatten the batch."""

    def pre(_module, args, kwargs):
        batches[id(block)] = (args[0] if args else kwargs["hidden_states"]).shape[0]

    _register(stack, block, pre, stage="input", prepend=True)


@contextmanager
def hooked(
    spec: ArchitectureSpec, functions: Mapping[_SiteKey, SiteFunction], *, prepend: bool = False
) -> Iterator[None]:
    """Hooks calling ``functions[site]`` at each site (a :class:`Site` or its name) in the passes inside.

    ``prepend`` runs them before the hooks already on each module (the interventions' edits come first, so
    that observers, such as the graph's capture or transformers' output recorders, see edited values).
    """
    groups: dict[tuple[int, str], list[_Entry]] = {}
    for key, function in functions.items():
        site = Site.parse(key) if isinstance(key, str) else key
        where = place(spec, site)
        groups.setdefault((id(where.module), where.stage), []).append((site, where, function))
    batches: dict[int, int] = {}
    with ExitStack() as stack:
        for entries in groups.values():
            _install(stack, entries, batches, prepend)
        places = [where for entries in groups.values() for _, where, _ in entries]
        inner = {id(where.block): where.block for where in places if where.module is not where.block}
        for block in inner.values():
            _track_batch(stack, block, batches)
        yield
