"""The exporter plugin interface and its registry.

An exporter turns a result of any kind of :mod:`attribution.result_kinds` (``AttributionResult``,
``ContributionGraph``, ``Comparison``, an intervention result, a corpus run read back with
:func:`attribution.corpus.load_run`, ...) into an :class:`Export`. Exporters are found by name in
the Python entry-point group ``attribution_explorer.exporters`` (the built-in Bokeh exporter is
declared there too), so a third party adds one by declaring
``[project.entry-points."attribution_explorer.exporters"]`` in its own package; no change here is
needed. :func:`register_exporter` adds one in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from attribution.corpus.runfolder import is_run_folder, load_run
from attribution.errors import AttributionExplorerError, InvalidInputError, ResultFormatError
from attribution.result_kinds import find_kind, kind_of, load_result_file, result_kinds
from attribution.results import ResultType

ENTRY_POINT_GROUP = "attribution_explorer.exporters"
#: Output modes: full pages, blog snippets (BokehJS from the CDN, or carried inline) and an iframe embed.
MODES = ("standalone", "cdn", "snippet", "snippet-inline", "iframe")
#: The modes whose ``html`` is a whole page (what the Hub gets; other modes are pushed as ``standalone``).
PAGE_MODES = ("standalone", "cdn")

# The built-in exporter's entry point, used when the package metadata is not installed (a plain
# source checkout); an installed package declares the same value in pyproject.toml.
_BUILTIN_ENTRY_POINTS = {"bokeh": "exporters.bokeh_html:BokehExporter"}


class ExporterError(AttributionExplorerError):
    """An exporter could not be found or loaded, or produced nothing usable."""


@dataclass
class Export:
    """What an exporter produced.

    ``html`` is the full page in ``standalone`` and ``cdn`` modes; the paste-in snippet in ``snippet`` (BokehJS
    loaded once per page from cdn.bokeh.org) and ``snippet-inline`` (BokehJS carried in the snippet, run once
    per page: works offline) modes, where ``iframe_html`` also holds the iframe embed; and the iframe embed
    (``<iframe srcdoc=…>`` of the self-contained page, sized to its content) in ``iframe`` mode.
    """

    html: str
    mode: str
    kind: str
    title: str
    iframe_html: str | None = None

    def write(self, path: str | Path) -> Path:
        """Write ``html`` to ``path`` (parent folders created); a clear error when that fails."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.html, encoding="utf-8")
        except OSError as error:
            raise InvalidInputError(f"Cannot write {target}: {error.strerror or error}") from error
        return target


@runtime_checkable
class Exporter(Protocol):
    """A plugin: ``export(result, kind=..., mode=..., **options)`` returns an :class:`Export`."""

    name: str

    def export(self, result: ResultType, **options: Any) -> Export: ...


_registered: dict[str, Callable[[], Exporter]] = {}


def register_exporter(name: str, factory: Callable[[], Exporter]) -> None:
    """Make an exporter available under ``name`` in this process (entry points need no call)."""
    _registered[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found = {
        name: metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
        for name, value in _BUILTIN_ENTRY_POINTS.items()
    }
    found.update({entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)})
    return found


def available_exporters() -> list[str]:
    """Names of every exporter: registered in-process or declared through entry points."""
    return sorted(set(_registered) | set(_entry_points()))


def get_exporter(name: str = "bokeh") -> Exporter:
    """An exporter instance by name; unknown names and broken plugins are clear errors."""
    if name in _registered:
        return _registered[name]()
    entry = _entry_points().get(name)
    if entry is None:
        raise InvalidInputError(f"unknown exporter {name!r}; available: {', '.join(available_exporters())}")
    try:
        loaded = entry.load()
    except Exception as error:  # a third-party plugin can fail in any way; name it and move on
        raise ExporterError(f"exporter {name!r} ({entry.value}) could not be loaded: {error}") from error
    exporter = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(exporter, Exporter):
        raise ExporterError(f"exporter {name!r} ({entry.value}) has no `name` and `export(result, **options)`")
    return exporter


def load_any_result(result: ResultType | str | Path) -> ResultType:
    """Accept a result object, the *path* of a saved result JSON, or a corpus run (object or folder).

    JSON text is not accepted here (a string is always a path): code holding JSON text from a request
    parses it with :func:`attribution.results.load_result`, which never touches the file system.
    """
    if find_kind(result) is not None:
        return result
    if isinstance(result, str | Path) and _is_run_folder(result):
        return load_run(result)  # type: ignore[return-value]
    if isinstance(result, str | Path):
        try:
            return load_result_file(result)
        except ResultFormatError as error:
            raise ResultFormatError(f"cannot read a result from {result}: {error}") from None
    raise InvalidInputError(f"cannot export a {type(result).__name__}; expected a result object or a JSON path")


def _is_run_folder(path: str | Path) -> bool:
    """A corpus run folder (``attribution-explorer corpus --out``): drawn as a corpus report."""
    try:
        return is_run_folder(path)
    except OSError:  # e.g. a name too long for the file system
        return False


def resolve_kind(result: ResultType, kind: str | None) -> str:
    """The figure kind for ``result``: given explicitly (and checked) or its registered kind's name."""
    natural = kind_of(result).name
    if kind is None:
        return natural
    names = [known.name for known in result_kinds()]
    if kind not in names:
        raise InvalidInputError(f"unknown figure kind {kind!r}; choose one of {', '.join(names)}")
    if kind != natural:
        raise InvalidInputError(f"a {type(result).__name__} is drawn as {natural!r}, not {kind!r}")
    return kind


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInputError(f"unknown output mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def export_result(
    result: ResultType | str | Path,
    *,
    kind: str | None = None,
    mode: str = "standalone",
    exporter: str = "bokeh",
    **options: Any,
) -> Export:
    """Export a result (object or the path of a saved JSON) with the named exporter plugin."""
    loaded = load_any_result(result)
    return get_exporter(exporter).export(loaded, kind=resolve_kind(loaded, kind), mode=check_mode(mode), **options)
