"""The registry of result kinds: every built-in kind known once, read by loading, exporting, titles and file names."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from attribution.corpus.runfolder import CorpusRun
from attribution.result_kinds import file_stem, find_kind, kind_of, result_kinds, result_label, result_title
from exporters.base import resolve_kind
from exporters.figures import figure_of, file_export_kinds
from space.cli.commands.export import add_parser as add_export_parser
from tests.support.golden_results import golden_results
from tests.support.paths import REPO

BUILT_IN = (
    "heatmap",
    "graph",
    "compare",
    "corpus",
    "intervention",
    "patching",
    "route_faithfulness",
    "faithfulness",
    "node_features",
    "layer_comparison",
    "top_activations",
)

#: What the code before the registry answered for each golden result: (kind, title, file stem).
BEFORE = {
    "attribution-causal": (
        "heatmap",
        "saliency attribution — synthetic-causal",
        "attribution_synthetic-causal_saliency",
    ),
    "attribution-seq2seq-signed": (
        "heatmap",
        "integrated_gradients attribution — synthetic-seq2seq",
        "attribution_synthetic-seq2seq_integrated_gradients",
    ),
    "comparison": ("compare", "comparison — saliency, attention", "comparison_saliency_attention"),
    "faithfulness": ("faithfulness", "attribution faithfulness — synthetic-causal", "faithfulness_synthetic-causal"),
    "graph-causal": ("graph", "contribution graph — synthetic-causal", "contribution-graph_synthetic-causal"),
    "graph-seq2seq": ("graph", "contribution graph — synthetic-seq2seq", "contribution-graph_synthetic-seq2seq"),
    "intervention-mean": ("intervention", "intervention — synthetic-causal", "intervention_synthetic-causal"),
    "intervention-patch": ("intervention", "intervention — synthetic-causal", "intervention_synthetic-causal"),
    "intervention-zero": ("intervention", "intervention — synthetic-causal", "intervention_synthetic-causal"),
    "patching": ("patching", "activation patching — synthetic-causal", "patching_synthetic-causal"),
    "route-faithfulness": (
        "route_faithfulness",
        "route faithfulness — synthetic-causal",
        "route-faithfulness_synthetic-causal",
    ),
}


def test_every_built_in_kind_names_its_class_schema_and_figure() -> None:
    assert tuple(kind.name for kind in result_kinds()) == BUILT_IN
    for kind in result_kinds():
        cls = kind.load_class()
        assert kind.class_path == f"{cls.__module__}:{cls.__qualname__}"
        assert getattr(cls, "SCHEMA", None) == kind.schema  # the corpus run has none: it is a folder
        assert callable(figure_of(kind.name).drawing_function())
    assert [kind.name for kind in result_kinds() if kind.schema is None] == ["corpus"]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_kind_title_and_file_stem_of_every_golden_result_are_what_they_were(name: str) -> None:
    result = golden_results()[name]
    assert (kind_of(result).name, result_title(result), file_stem(result)) == BEFORE[name]
    assert resolve_kind(result, None) == BEFORE[name][0]


def test_a_corpus_run_has_its_kind_title_label_and_file_stem() -> None:
    manifest = {"model": {"model_id": "tiny-synth-translate"}, "task": {"methods": ["saliency", "graph"]}}
    run = CorpusRun(run_dir=Path("run"), manifest=manifest, rows=[])
    assert kind_of(run).name == "corpus" and result_label(run) == "corpus report"
    assert result_title(run) == "corpus report — tiny-synth-translate, saliency, graph"
    assert file_stem(run) == "corpus-report"


def test_labels_name_each_kind_for_people() -> None:
    labels = {name: result_label(result) for name, result in golden_results().items()}
    assert labels["attribution-causal"] == "attribution" and labels["graph-causal"] == "contribution graph"
    assert labels["patching"] == "activation patching" and labels["faithfulness"] == "attribution faithfulness"


def test_file_stems_are_safe_and_bounded_whatever_the_model_id() -> None:
    graph = golden_results()["graph-causal"]
    graph.provenance.model_id = "../../etc/<passwd> " + "x" * 300
    assert file_stem(graph) == ("contribution-graph_..-..-etc-passwd-" + "x" * 300)[:100]  # no "/", no "<"


def test_anything_else_is_not_a_result() -> None:
    assert find_kind({"schema": "attribution-result"}) is None and find_kind("result.json") is None


def test_the_cli_export_offers_the_kinds_a_json_file_holds() -> None:
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers())
    kinds = [*BUILT_IN]
    kinds.remove("corpus")  # a folder: drawn by `report`
    assert file_export_kinds() == kinds
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "r.json", "--kind", "corpus", "--out", "x.html"])


def _imported_after(code: str, packages: set[str]) -> list[str]:
    """The modules of ``packages`` (top-level names, or whole module names) imported after running ``code``."""
    found = f"sorted(m for m in sys.modules if m.split('.')[0] in {packages!r} or m in {packages!r})"
    probe = f"import json, sys\n{code}\nprint(json.dumps({found}))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_asking_which_kinds_there_are_is_cheap() -> None:
    """The command line asks while building its parser: the library's registry needs neither numpy nor any result
    module, the exporters' no Bokeh."""
    library = "import attribution.result_kinds as k; k.result_kinds()"
    assert _imported_after(library, {"numpy", "torch", "attribution.results", "attribution.interventions"}) == []
    assert _imported_after("import exporters.figures as f; f.file_export_kinds()", {"bokeh", "torch"}) == []
