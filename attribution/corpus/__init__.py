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
:mod:`~attribution.corpus.run` (the driver). Nothing heavy is imported until used.
"""

from attribution.corpus.metrics import Metric, MetricInput, available_metrics, register_metric
from attribution.corpus.model_spec import ModelSpec
from attribution.corpus.ray_engine import RayOptions
from attribution.corpus.records import FieldMap, Record, read_records
from attribution.corpus.run import RunSummary, run_corpus
from attribution.corpus.runfolder import CorpusRun, is_run_folder, load_run
from attribution.corpus.tasks import GRAPH_METHOD, TaskConfig

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
    "is_run_folder",
    "load_run",
    "read_records",
    "register_metric",
    "run_corpus",
]
