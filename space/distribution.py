"""Who we are once installed: the distribution ``attribution-explorer``, its version, and what it runs on.

Our import names (``attribution``, ``exporters``, ``space``) are also the import names of unrelated
distributions on the package index (``attribution``, ``exporters``, ``space``). Installed into the same
environment, one overwrites the other's files, and the failure then shows up as a puzzling import
error. So ``--version --verbose`` lists who provides each import name, and an import failure of one of
them is reported with our distribution's name and the other provider (:func:`import_problem`).

Standard library only: ``attribution-explorer --version`` must not wait for torch or Gradio.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "attribution-explorer"
IMPORT_NAMES = ("attribution", "exporters", "space")
#: The libraries whose versions matter in a bug report (distribution names).
REPORTED_LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "huggingface-hub",
    "inseq",
    "captum",
    "gradio",
    "bokeh",
    "numpy",
)


def installed_version(distribution: str = DISTRIBUTION) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def import_name_providers() -> dict[str, list[str]]:
    """For each of our import names, the installed distributions (``name version``) that provide it."""
    providers = metadata.packages_distributions()
    return {
        name: [f"{dist} {installed_version(dist) or '?'}" for dist in dict.fromkeys(providers.get(name, []))]
        for name in IMPORT_NAMES
    }


def version_report(*, verbose: bool = False) -> str:
    """``attribution-explorer 0.1.0``; verbose: Python, platform, library versions and import-name providers."""
    lines = [f"{DISTRIBUTION} {installed_version() or 'not installed (running from a source tree)'}"]
    if not verbose:
        return lines[0]
    package = Path(__file__).resolve().parents[1]
    lines.append(f"installed in {package}")
    lines.append(f"Python {platform.python_version()} ({sys.executable}) on {platform.platform()}")
    lines.extend(f"{name} {installed_version(name) or 'not installed'}" for name in REPORTED_LIBRARIES)
    for name, providers in import_name_providers().items():
        others = [provider for provider in providers if not provider.startswith(f"{DISTRIBUTION} ")]
        clash = f" (CONFLICT: also provided by {', '.join(others)})" if others else ""
        lines.append(f"import name {name!r}: {', '.join(providers) or 'no installed distribution'}{clash}")
    return "\n".join(lines)


def import_problem(error: ImportError) -> str | None:
    """A message naming our distribution when ``error`` is a failed import of one of our own modules."""
    top = (error.name or "").partition(".")[0]
    if top not in IMPORT_NAMES:
        return None
    others = [p for p in import_name_providers()[top] if not p.startswith(f"{DISTRIBUTION} ")]
    blame = (
        f"the import name {top!r} is also provided by {', '.join(others)}, which overwrites our files"
        if others
        else f"{DISTRIBUTION}'s package {top!r} is incomplete or shadowed"
    )
    return (
        f"{DISTRIBUTION} cannot import {error.name!r} ({error}): {blame}. Install {DISTRIBUTION} in its own "
        f"virtual environment, or reinstall it: pip install --force-reinstall --no-deps {DISTRIBUTION}"
    )
