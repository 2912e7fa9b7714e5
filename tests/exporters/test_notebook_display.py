"""Results in notebooks: IPython's display machinery gets each result's interactive figure, BokehJS once per notebook.

The real ``IPython`` formatter is asked (what Jupyter, JupyterLab, VS Code and Colab kernels run); the figure in
the output is read back from the block's JSON and compared with :func:`exporters.bokeh_html.build_figure`'s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from bokeh.models import Slider
from IPython.core.formatters import DisplayFormatter

import attribution.display as display
import exporters.notebook as notebook
from attribution.corpus import TaskConfig, load_run
from attribution.corpus.runfolder import RunFolder
from attribution.corpus.tasks import MethodOutcome
from attribution.errors import InvalidInputError
from attribution.result_kinds import kind_of, result_title
from exporters.bokeh_html import build_figure
from exporters.embed import bundle_names
from tests.support.golden_results import golden_results
from tests.support.paths import REPO

BUNDLE = re.compile(r'<script type="text/plain" data-ae-bundle="([a-z-]+)">')


@pytest.fixture(scope="module")
def golden() -> dict[str, object]:
    return golden_results()


@pytest.fixture(autouse=True)
def fresh_notebook(monkeypatch):
    """Each test is a new notebook: nothing carried yet, the built-in renderer registered, not in Colab."""
    monkeypatch.setattr(notebook, "_carried", set())
    monkeypatch.setattr(display, "_renderer", notebook.notebook_html)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def _figure_doc(html: str) -> dict:
    """The Bokeh document a block draws (its ``data-ae="figure"`` JSON)."""
    text = re.search(r'<script type="application/json" data-ae="figure">(.*?)</script>', html, re.S).group(1)
    return json.loads(text)


def _formatted(result) -> dict[str, str]:
    data, _ = DisplayFormatter().format(result)
    return data


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, golden):
    """A run folder with one record (the golden causal attribution), written as a run writes it."""
    result = golden["attribution-causal"]
    task = TaskConfig(methods=("saliency",), metrics=())
    run_dir = tmp_path_factory.mktemp("run") / "run"
    folder = RunFolder.open(run_dir, model={"model_id": "synthetic-causal"}, task=task, data={})
    values = dict.fromkeys(task.value_columns())
    outcome = MethodOutcome(
        "r1", 0, "0" * 16, "saliency", "ok", None, result, result.source_text, result.target_text, values, 1.0, "here"
    )
    folder.write([[outcome]])
    folder.close(status="complete")
    return load_run(run_dir)


def test_every_kind_shows_its_export_figure_and_one_line_in_ipython(golden, corpus_run) -> None:
    """Each kind's output holds one self-drawing block of the same figure the export draws, and a short line."""
    results = [*golden.values(), corpus_run]
    assert {kind_of(result).name for result in results} == {
        "heatmap",
        "graph",
        "compare",
        "corpus",
        "intervention",
        "patching",
        "route_faithfulness",
        "faithfulness",
    }
    for result in results:
        data = _formatted(result)
        assert data["text/plain"] == f"{type(result).__name__}: {result_title(result)}"
        html = data["text/html"]
        assert html.count('<div class="ae-embed">') == 1 and "<h1" not in html
        drawn = {name for name, _ in _objects(_figure_doc(html))}
        expected = {model.__qualified_model__ for model in build_figure(result).references()}
        assert expected <= drawn, (kind_of(result).name, expected - drawn)


def _objects(spec: dict) -> list[tuple[str, dict]]:
    """Every model object in a serialised Bokeh document: (its type name, its attributes)."""
    found = []

    def walk(value) -> None:
        if isinstance(value, dict):
            if value.get("type") == "object" and "name" in value:
                found.append((value["name"], value.get("attributes", {})))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(spec["doc"])
    return found


def test_bokehjs_is_carried_once_per_notebook(golden) -> None:
    """The first output carries BokehJS; later ones carry only bundles no output carried before."""
    first = _formatted(golden["attribution-causal"])["text/html"]
    again = _formatted(golden["attribution-seq2seq-signed"])["text/html"]
    graph = golden["graph-causal"]
    graph_html = _formatted(graph)["text/html"]
    graph_again = _formatted(graph)["text/html"]
    assert BUNDLE.findall(first) == ["bokeh"]
    assert BUNDLE.findall(again) == []
    needed = bundle_names(build_figure(graph))
    assert "bokeh-widgets" in needed and BUNDLE.findall(graph_html) == [n for n in needed if n != "bokeh"]
    assert BUNDLE.findall(graph_again) == []


def test_in_colab_every_output_carries_its_bundles(golden, monkeypatch) -> None:
    """Colab draws each output in a frame of its own: no output can lean on another's BokehJS."""
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    for _ in range(2):
        assert BUNDLE.findall(_formatted(golden["attribution-causal"])["text/html"]) == ["bokeh"]
    graph = golden["graph-causal"]
    assert BUNDLE.findall(_formatted(graph)["text/html"]) == bundle_names(build_figure(graph))


def test_after_carry_bokehjs_again_the_next_output_carries_it(golden) -> None:
    _formatted(golden["attribution-causal"])
    notebook.carry_bokehjs_again()
    assert BUNDLE.findall(_formatted(golden["attribution-causal"])["text/html"]) == ["bokeh"]


def test_show_draws_with_the_figures_options(golden, monkeypatch) -> None:
    """``show(threshold=…)`` reaches the graph's figure (its slider starts there); a bad option is one clear error."""
    shown = []
    monkeypatch.setattr(display, "_ipython_display", lambda: lambda bundle, raw: shown.append((bundle, raw)))
    graph = golden["graph-causal"]
    threshold = round(graph.threshold + 0.05, 3)
    graph.show(threshold=threshold)
    [(bundle, raw)] = shown
    assert raw is True and bundle["text/plain"] == f"ContributionGraph: {result_title(graph)}"
    slider_value = next(iter(build_figure(graph, threshold=threshold).select({"type": Slider}))).value
    assert slider_value == threshold
    drawn = [attributes["value"] for name, attributes in _objects(_figure_doc(bundle["text/html"])) if name == "Slider"]
    assert drawn == [threshold]
    with pytest.raises(InvalidInputError, match="unknown option"):
        graph.show(no_such_option=1)


def test_without_a_renderer_a_result_says_how_to_get_one(golden, monkeypatch) -> None:
    """Nothing registered and nothing declared: one line saying what to import; ``show()`` raises it."""
    monkeypatch.setattr(display, "_renderer", None)
    monkeypatch.setattr(display.metadata, "entry_points", lambda group: [])
    data = _formatted(golden["patching"])
    assert set(data) == {"text/plain"}
    assert (
        data["text/plain"].startswith("PatchingResult: activation patching")
        and "import exporters" in data["text/plain"]
    )
    with pytest.raises(InvalidInputError, match="import exporters"):
        golden["patching"].show()


def test_a_result_that_cannot_draw_shows_why_on_its_line(golden, monkeypatch) -> None:
    def broken(result, **options):
        raise InvalidInputError("no figure draws a 'patching' result")

    monkeypatch.setattr(display, "_renderer", broken)
    data = _formatted(golden["patching"])
    assert set(data) == {"text/plain"} and data["text/plain"].endswith(
        "(no figure: no figure draws a 'patching' result)"
    )


def test_a_bare_import_attribution_draws_through_the_entry_point() -> None:
    """In a fresh interpreter, only ``attribution`` imported: the installed entry point finds the renderer."""
    declared = [entry.value for entry in display.metadata.entry_points(group=display.ENTRY_POINT_GROUP)]
    assert declared == ["exporters.notebook:notebook_html"], "stale package metadata: pip install -e . again"
    code = (
        "import sys; from attribution.results import load_result_file\n"
        f"result = load_result_file({str(REPO / 'tests/support/golden/attribution-causal.json')!r})\n"
        "assert 'exporters' not in sys.modules\n"
        "bundle = result._repr_mimebundle_()\n"
        "assert 'ae-embed' in bundle['text/html'], bundle\n"
        "print(sorted(name for name in sys.modules if name.startswith('exporters')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "exporters.notebook" in done.stdout


def test_show_outside_a_notebook_prints_one_line_not_a_page(golden, capsys) -> None:
    golden["faithfulness"].show()
    printed = capsys.readouterr().out
    assert printed.startswith("FaithfulnessResult: attribution faithfulness — synthetic-causal (drawn in a notebook")
    assert printed.count("\n") == 1 and "<" not in printed
