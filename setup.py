"""Build hook: ship the bundled tiny models and the app's samples inside the wheel.

They live in ``examples/`` (beside the script that trains them), outside the ``attribution`` package.
At build time they are copied into the built package as ``attribution/bundled_data/`` (same layout as
``examples/``), where :mod:`attribution.bundled` finds them through ``importlib.resources``; the
repository keeps a single copy. Editable installs read ``examples/`` directly. Everything else about
the package is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: What the wheel carries from examples/ (paths relative to it); the test sets and the training script stay out.
BUNDLED_FILES = ("models/*/*.json", "models/*/*.safetensors", "data/samples.json")


class BuildPyWithBundledData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads examples/ in place
            return
        target = Path(self.build_lib) / "attribution" / "bundled_data"
        files = sorted(path for pattern in BUNDLED_FILES for path in (ROOT / "examples").glob(pattern))
        if not any(path.suffix == ".safetensors" for path in files):
            raise SystemExit("examples/models holds no bundled model: run `python examples/train_tiny_models.py`")
        for path in files:
            destination = target / path.relative_to(ROOT / "examples")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


setup(cmdclass={"build_py": BuildPyWithBundledData})
