"""Where the bundled tiny models and their sample inputs are, in a checkout and in an installed wheel.

The repository keeps them in ``examples/`` (``models/`` and ``data/samples.json``), beside
``examples/train_tiny_models.py`` which writes them. A wheel carries them as package data of
``attribution`` (``attribution/bundled_data/``, copied there at build time by ``setup.py``, so the
repository holds one copy), found through :mod:`importlib.resources` from any working directory.
Run from a checkout (an editable install, or a Space running ``python space/app.py``) they are read
from ``examples/``. ``ATTRIBUTION_EXPLORER_MODELS_DIR`` overrides the models' folder.

Standard library only: the CLI and the app's config name the bundled models before torch is imported.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

MODELS_DIR_ENV = "ATTRIBUTION_EXPLORER_MODELS_DIR"
#: Package-data folder of ``attribution`` in a wheel; mirrors the checkout's ``examples/`` layout.
PACKAGE_DATA_DIR = "bundled_data"
#: Short names of the tiny models we ship, usable wherever a model id is expected.
BUNDLED_MODELS = ("tiny-ioi-gpt2", "tiny-synth-translate")


def data_root() -> Path:
    """The folder holding ``models/`` and ``data/``: the wheel's package data, else the checkout's ``examples/``."""
    packaged = resources.files("attribution").joinpath(PACKAGE_DATA_DIR)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "examples"


def models_dir() -> Path:
    """``ATTRIBUTION_EXPLORER_MODELS_DIR`` when set, else the bundled ``models/`` folder."""
    override = os.environ.get(MODELS_DIR_ENV)
    return Path(override).expanduser() if override else data_root() / "models"


BUNDLED_MODELS_DIR = models_dir()


def bundled_model_path(name: str) -> Path:
    return BUNDLED_MODELS_DIR / name


def samples_path() -> Path:
    """``samples.json``: IOI prompts and aligned translations for the app's examples and the docs."""
    return data_root() / "data" / "samples.json"
