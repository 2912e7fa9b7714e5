"""Corpus runs: attribute, route and score whole data sets, resumable, locally or on Ray.

    from attribution.corpus import FieldMap, ModelSpec, TaskConfig, read_records, run_corpus, load_run
    records = read_records("examples/data/synth_translate_test.jsonl", FieldMap(text="source"))
    summary = run_corpus(records, "runs/synth", model=ModelSpec("tiny-synth-translate"),
                         task=TaskConfig(methods=("saliency", "attention", "graph")))
    run = load_run("runs/synth")       # manifest + one row per record and method (no model needed)

Modules, one job each: :mod:`~attribution.corpus.records` (reading data),
:mod:`~attribution.corpus.tasks` (the per-record task, calling the same library functions as the
app), :mod:`~attribution.corpus.metrics` (the per-record scores registry),
:mod:`~attribution.corpus.runfolder` (the run folder, written atomically, read back),
:mod:`~attribution.corpus.local_engine` and :mod:`~attribution.corpus.ray_engine` (the engines),
:mod:`~attribution.corpus.run` (the driver). Nothing heavy is imported until used (names load lazily).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Metric": "metrics",
    "MetricInput": "metrics",
    "available_metrics": "metrics",
    "default_metrics": "metrics",
    "register_metric": "metrics",
    "ModelSpec": ".models",  # the one model spec: attribution.models.ModelSpec
    "RayOptions": "ray_engine",
    "FieldMap": "records",
    "Record": "records",
    "read_records": "records",
    "RunSummary": "run",
    "run_corpus": "run",
    "CorpusRun": "runfolder",
    "is_run_folder": "runfolder",
    "load_run": "runfolder",
    "GRAPH_METHOD": "tasks",
    "TaskConfig": "tasks",
}

__all__ = [
    "GRAPH_METHOD",
    "CorpusRun",
    "FieldMap",
    "Metric",
    "MetricInput",
    "ModelSpec",
    "RayOptions",
    "Record",
    "RunSummary",
    "TaskConfig",
    "available_metrics",
    "default_metrics",
    "is_run_folder",
    "load_run",
    "read_records",
    "register_metric",
    "run_corpus",
]


def __getattr__(name: str) -> Any:
    """Imported on first use: reading a run folder (an exporter's job) must not load torch."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
