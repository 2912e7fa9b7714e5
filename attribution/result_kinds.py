"""Result kinds: one registry entry per kind of result, the one place that knows a kind.

An entry (:class:`ResultKind`) gives a kind's ``name`` (the figure kind: ``export --kind``,
``Export.kind``), its class, the ``schema`` its JSON carries, a short human ``label``, its page
title and its file stem. :func:`load_result` / :func:`load_result_file` read any registered kind
from JSON; the app, the CLI and the exporters ask :func:`kind_of`, :func:`result_title`,
:func:`result_label` and :func:`file_stem` instead of testing classes one by one.

Adding a kind is one module plus one registration (docs/development.md, "Adding a result kind";
``tests/project/test_result_kind_recipe.py`` follows it): the module holds the result class (a
:class:`~attribution.results.JsonResult`, built on :class:`~attribution.results.ModelResult` when one
model made it) and calls :func:`register_result_kind`; its figure, if it has one, is registered with
:func:`exporters.figures.register_figure` under the kind's name.

Why the drawing side is registered in ``exporters`` by the kind's name, and not named here (say as a
``"module:function"`` string): a figure is Bokeh code, the business of one exporter plugin (another
plugin draws kinds its own way, keyed by the same names); the library names no exporter module, not
even as a string, so ``attribution`` stays below ``exporters`` in fact and not only in its imports; and a
kind without a figure still loads, titles and names its files.

Why the built-in classes are named by ``"module:Class"`` strings, imported on first need (as exporters'
built-in entry point is): this module sits below every result module (they may import it, it imports
none of them), so :func:`load_result` reads every kind, the intervention results included, without
``attribution.results`` importing the modules that build on it: no import circle. It also keeps this
module free of numpy and torch. A kind registered at run time gives its class itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from attribution.errors import InvalidInputError, ResultFormatError
from attribution.validation import parse_json_text, read_json_file, safe_file_name

#: Longest file stem (before ``.json`` / ``.html`` and a suffix such as ``-snippet``).
MAX_STEM_CHARS = 100


@runtime_checkable
class JsonReadable(Protocol):
    """What :func:`load_result` needs of a kind's class: its checked reader of parsed JSON (a ``JsonResult``'s)."""

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Any: ...


@dataclass(frozen=True)
class ResultKind:
    """What the library knows of one kind of result.

    ``result_class`` is the class or its ``"module:Class"`` path. ``schema`` is the ``"schema"`` value of
    its JSON, read by :func:`load_result`; None for a kind that is not one JSON document (a corpus run is
    a folder, read by :func:`attribution.corpus.load_run`). ``title`` and ``file_stem`` are functions of a
    result; without them the title is ``"<label> — <model id>"`` and the file stem parts are the schema (or
    name) and the model id (a result with a ``provenance``).
    """

    name: str
    label: str
    result_class: type | str
    schema: str | None = None
    title: Callable[[Any], str] | None = None
    file_stem: Callable[[Any], Sequence[str]] | None = None

    @property
    def class_path(self) -> str:
        """``"module:Class"`` of the result class (without importing it)."""
        if isinstance(self.result_class, str):
            return self.result_class
        return f"{self.result_class.__module__}:{self.result_class.__qualname__}"

    def load_class(self) -> type:
        """The result class, imported on first use; its ``SCHEMA`` must be this kind's schema."""
        cls = self.result_class
        if isinstance(cls, str):
            module, _, name = cls.partition(":")
            cls = getattr(importlib.import_module(module), name)
        if self.schema is not None and getattr(cls, "SCHEMA", None) != self.schema:
            raise TypeError(f"result kind {self.name!r}: {self.class_path}.SCHEMA is not {self.schema!r}")
        return cls


def _attribution_title(result: Any) -> str:
    return f"{result.method} attribution — {result.provenance.model_id}"


def _comparison_title(comparison: Any) -> str:
    return f"comparison — {', '.join(comparison.labels)}"


def _corpus_title(run: Any) -> str:
    return f"corpus report — {run.model_id}, {', '.join(run.methods)}"


_INTERVENTIONS = "attribution.interventions.results"
_FEATURES = "attribution.features.results"
_KINDS: dict[str, ResultKind] = {
    kind.name: kind
    for kind in (
        ResultKind(
            "heatmap",
            "attribution",
            "attribution.results:AttributionResult",
            schema="attribution-result",
            title=_attribution_title,
            file_stem=lambda result: ["attribution", result.provenance.model_id, result.method],
        ),
        ResultKind("graph", "contribution graph", "attribution.results:ContributionGraph", schema="contribution-graph"),
        ResultKind(
            "compare",
            "comparison",
            "attribution.results:Comparison",
            schema="comparison",
            title=_comparison_title,
            file_stem=lambda comparison: ["comparison", *comparison.labels[:3]],
        ),
        ResultKind(
            "corpus",
            "corpus report",
            "attribution.corpus.runfolder:CorpusRun",
            title=_corpus_title,
            file_stem=lambda run: ["corpus-report"],
        ),
        ResultKind("intervention", "intervention", f"{_INTERVENTIONS}:InterventionResult", schema="intervention"),
        ResultKind("patching", "activation patching", f"{_INTERVENTIONS}:PatchingResult", schema="patching"),
        ResultKind(
            "route_faithfulness",
            "route faithfulness",
            f"{_INTERVENTIONS}:RouteFaithfulness",
            schema="route-faithfulness",
        ),
        ResultKind(
            "faithfulness", "attribution faithfulness", f"{_INTERVENTIONS}:FaithfulnessResult", schema="faithfulness"
        ),
        ResultKind(
            "node_features",
            "SAE features",
            f"{_FEATURES}:NodeFeatures",
            schema="node-features",
            title=lambda view: f"SAE features at {view.node} — {view.provenance.model_id}",
        ),
        ResultKind(
            "layer_comparison", "two prompts layer by layer", f"{_FEATURES}:LayerComparison", schema="layer-comparison"
        ),
        ResultKind(
            "top_activations",
            "neuron / feature viewer",
            f"{_FEATURES}:TopActivations",
            schema="top-activations",
            title=lambda viewer: f"{viewer.unit} — {viewer.provenance.model_id}",
            file_stem=lambda viewer: ["viewer", viewer.provenance.model_id, viewer.unit.replace(":", "-")],
        ),
    )
}


def register_result_kind(kind: ResultKind) -> None:
    """Make ``kind`` known: :func:`load_result` reads its schema, :func:`kind_of` knows its objects.

    Registering the same entry again does nothing; another entry under a taken name, schema or class is a
    mistake of the code registering it (``ValueError``).
    """
    if _KINDS.get(kind.name) == kind:
        return
    for known in _KINDS.values():
        clash = (
            ("name", kind.name == known.name),
            ("schema", kind.schema is not None and kind.schema == known.schema),
            ("class", kind.class_path == known.class_path),
        )
        for what, same in clash:
            if same:
                raise ValueError(f"result kind {kind.name!r}: its {what} is taken by the kind {known.name!r}")
    _KINDS[kind.name] = kind


def result_kinds() -> tuple[ResultKind, ...]:
    """Every registered kind, built-in ones first, in the order they were registered."""
    return tuple(_KINDS.values())


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def find_kind(value: Any) -> ResultKind | None:
    """The kind of a result object (of its class, or of the nearest registered base class), else None."""
    by_class = {kind.class_path: kind for kind in _KINDS.values()}
    return next((by_class[path] for path in map(_class_path, type(value).__mro__) if path in by_class), None)


def kind_of(result: Any) -> ResultKind:
    """The kind of a result object; anything else is one :class:`InvalidInputError`."""
    kind = find_kind(result)
    if kind is None:
        raise InvalidInputError(f"a {type(result).__name__} is not a result of a known kind")
    return kind


def result_title(result: Any) -> str:
    """The page title, e.g. ``"saliency attribution — gpt2"`` or ``"contribution graph — tiny-ioi-gpt2"``."""
    kind = kind_of(result)
    return kind.title(result) if kind.title else f"{kind.label} — {result.provenance.model_id}"


def result_label(result: Any) -> str:
    """A short human name of the result's kind, e.g. ``"activation patching"``."""
    return kind_of(result).label


def file_stem(result: Any) -> str:
    """A safe file name (no extension) for a result's files, e.g. ``attribution_gpt2_saliency``."""
    kind = kind_of(result)
    parts = kind.file_stem(result) if kind.file_stem else [kind.schema or kind.name, result.provenance.model_id]
    return safe_file_name("_".join(parts), default="result")[:MAX_STEM_CHARS]


def load_result(text: str | bytes, *, max_bytes: int | None = None) -> Any:
    """Read any result from JSON *text* (never a path) into its class, checking its schema."""
    return _from_any(parse_json_text(text, max_bytes=max_bytes))


def load_result_file(path: str | Path, *, max_bytes: int | None = None) -> Any:
    """Read any result from a saved JSON file (the CLI and the Python API) into its class."""
    return _from_any(read_json_file(path, max_bytes=max_bytes))


def _from_any(data: Any) -> Any:
    by_schema = {kind.schema: kind for kind in _KINDS.values() if kind.schema is not None}
    schema = data.get("schema") if isinstance(data, dict) else None
    kind = by_schema.get(schema) if isinstance(schema, str) else None
    if kind is None:
        shown = repr(schema) if isinstance(schema, str) and len(schema) < 40 else type(schema).__name__
        raise ResultFormatError(
            f"not an Attribution Explorer result (schema {shown}); expected one of {', '.join(sorted(by_schema))}"
        )
    cls = kind.load_class()
    if not isinstance(cls, JsonReadable):
        raise TypeError(f"result kind {kind.name!r}: {kind.class_path} has no from_dict to read its JSON")
    return cls.from_dict(data)
