"""The app's shared context as the tests build it: offline (the Hub out of reach), from one config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from attribution.models import ModelCache
from space.gradio_app.config import SpaceConfig, offered_models
from space.gradio_app.context import AppContext


def offline_context(
    config: SpaceConfig, *, cache: ModelCache | None = None, export_root: Path | None = None
) -> AppContext:
    """What the app builds for ``config`` when the Hub is unreachable, as it is in every test.

    ``cache`` replaces the config's model cache where a test bounds the cache itself; ``export_root`` keeps
    the test's export files in its own folder instead of the app's default one.
    """
    context = AppContext.create(config, offered_models(config, hub_reachable=False), export_root=export_root)
    return context if cache is None else dataclasses.replace(context, cache=cache)
