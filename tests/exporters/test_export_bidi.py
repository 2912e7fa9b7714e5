"""Unicode bidi controls in exported pages: every text a page shows marks them (``<U+202E>``), none reorders it.

A right-to-left override (U+202E) written raw into a title makes the browser draw what follows backwards
(``evil\u202egnp.exe`` reads "evilexe.png"); the other bidi controls (U+202A–U+202E, U+2066–U+2069,
U+200E/F, U+061C) embed, isolate or mark direction. Each exporter (heatmap, graph, compare, the intervention
kinds, the corpus report) gets them in every text a result can carry into its page (model ids, methods,
labels, titles, components, texts, record ids), and no control may reach the page except inside the
provenance JSON (data, never shown, kept exactly as the result has it). Chromium checks what is drawn.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from bokeh.models import CustomJS, DataTable

from attribution.corpus import FieldMap, ModelSpec, TaskConfig, load_run, read_records, run_corpus
from exporters import export_result
from exporters.bokeh_html import build_figure
from exporters.hub import readme_for
from exporters.page import PROVENANCE_ATTRIBUTE, PROVENANCE_SCRIPT_ID
from exporters.tokens import page_text
from tests.support.corpus_data import translation_rows, write_jsonl
from tests.support.synthetic_results import (
    synthetic_attribution,
    synthetic_faithfulness,
    synthetic_graph,
    synthetic_intervention,
    synthetic_patching,
)

#: Every bidi control named in issue 18, one per text so that each is seen.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
#: A control raw, or as a JSON / JavaScript escape (Bokeh's document JSON may escape non-ASCII characters).
_ANY_CONTROL = re.compile(f"[{BIDI_CONTROLS}]|\\\\u(?:202[a-e]|206[6-9]|200[ef]|061c)", re.IGNORECASE)
_PROVENANCE = re.compile(
    rf'<script type="application/json" (?:id="{PROVENANCE_SCRIPT_ID}"|{PROVENANCE_ATTRIBUTE})>.*?</script>', re.DOTALL
)


def _bidi(text: str, control: str = "\u202e") -> str:
    """``text`` with ``control`` in the middle: what follows would be reordered if it reached a page raw."""
    return f"{text[:3]}{control}{text[3:]}"


def _attribution():
    result = synthetic_attribution("causal")
    result.provenance.model_id = _bidi("evil-model", "\u202e")
    result.method = _bidi("saliency", "\u2067")
    result.step_scores = {_bidi("probability", "\u202b"): result.step_scores["probability"]}
    result.contrast_target = _bidi("contrast", "\u061c")
    return result


def _graph():
    graph = synthetic_graph("causal")
    graph.provenance.model_id = _bidi("evil-model", "\u202d")
    return graph


def _comparison():
    from attribution.results import Comparison

    first, second = synthetic_attribution("seq2seq", seed=1), synthetic_attribution("seq2seq", seed=2)
    first.provenance.model_id = _bidi("evil-model", "\u2066")
    return Comparison(
        [first, second], [_bidi("saliency", "\u202a"), _bidi("attention", "\u200f")], [[1, 0.5], [0.5, 1]]
    )


def _intervention():
    result = synthetic_intervention()
    result.components = [_bidi("decoder:1:head:0", "\u2068"), "decoder:2:ffn:*"]
    result.provenance.model_id = _bidi("evil-model", "\u202c")
    return result


def _patching():
    result = synthetic_patching()
    result.source_text, result.counterfactual_text = _bidi("When Mary", "\u202e"), _bidi("When John", "\u2069")
    result.maps[0].name = _bidi("head map", "\u200e")
    return result


def _faithfulness():
    result = synthetic_faithfulness()
    result.explanation = _bidi("integrated", "\u202e")
    return result


RESULTS = {
    "heatmap": _attribution,
    "graph": _graph,
    "compare": _comparison,
    "intervention": _intervention,
    "patching": _patching,
    "faithfulness": _faithfulness,
}


def _assert_marked_only(page: str, title: str) -> None:
    """No bidi control outside the provenance JSON; the title shown marked in ``<title>`` and ``<h1>``."""
    shown = _PROVENANCE.sub("", page)
    found = _ANY_CONTROL.findall(shown)
    assert not found, f"bidi controls reached the page: {found[:5]}"
    marked = page_text(title)
    assert marked != title and "<U+" in marked
    assert f"<title>{html.escape(marked)}</title>" in page
    assert f'<h1 class="ae-title">{html.escape(marked)}</h1>' in page


@pytest.mark.parametrize("kind", RESULTS)
@pytest.mark.parametrize("mode", ["standalone", "snippet"])
def test_every_exporter_marks_bidi_controls_in_every_text(kind: str, mode: str) -> None:
    result = RESULTS[kind]()
    title = _bidi("title of the page", "\u202e")
    export = export_result(result, mode=mode, title=title)
    page = export.html if mode == "standalone" else html.unescape(export.iframe_html.split('srcdoc="')[1])
    _assert_marked_only(page, title)
    if mode == "snippet":
        assert not _ANY_CONTROL.findall(_PROVENANCE.sub("", export.html))
    default = export_result(result, mode="standalone")  # the default title names the model / labels: marked
    assert not _ANY_CONTROL.findall(_PROVENANCE.sub("", default.html))
    heading = re.search(r'<h1 class="ae-title">(.*?)</h1>', default.html).group(1)
    assert "U+" in heading or kind in ("patching", "faithfulness")
    record = json.loads(re.search(_PROVENANCE, default.html).group(0).split(">", 1)[1].rsplit("<", 1)[0])
    assert _ANY_CONTROL.search(json.dumps(record, ensure_ascii=False))  # the data keeps the text exactly


def test_the_hub_readme_marks_them_too() -> None:
    result = _attribution()
    export = export_result(result, mode="standalone", title=_bidi("title", "\u202e"))
    for repo_type in ("dataset", "space"):
        readme = readme_for(export, result, repo_type)
        assert not _ANY_CONTROL.findall(readme), repo_type
        assert "tit&lt;U+202E&gt;le" in readme and "evi&lt;U+202E&gt;l-model" in readme


@pytest.fixture(scope="module")
def bidi_run(tmp_path_factory) -> Path:
    """A real corpus run whose record ids and texts hold bidi controls."""
    rows = [{"id": f"pair-{i}", **row} for i, row in enumerate(translation_rows(2))]
    rows[0]["id"] = _bidi("record-one", "\u202e")
    rows[1]["source"] = _bidi(rows[1]["source"], "\u2066")
    data = write_jsonl(tmp_path_factory.mktemp("data") / "pairs.jsonl", rows)
    folder = tmp_path_factory.mktemp("runs") / "run"
    task = TaskConfig(methods=("saliency",))
    run_corpus(read_records(data, FieldMap(id="id")), folder, model=ModelSpec("tiny-synth-translate"), task=task)
    return folder


def test_the_corpus_report_marks_record_ids_and_texts(bidi_run: Path) -> None:
    run = load_run(bidi_run)
    title = _bidi("corpus title", "\u202e")
    page = export_result(run, mode="standalone", title=title).html
    _assert_marked_only(page, title)
    layout = build_figure(run)
    table = next(iter(layout.select({"type": DataTable})))
    details = next(c for c in layout.select({"type": CustomJS}) if "details" in c.args).args["details"]
    assert "rec<U+202E>ord-one" in table.source.data["record"]  # the id as the table shows it…
    assert "saliency" in details["rec<U+202E>ord-one"]  # …and as the detail view finds its heatmap
    assert any("<U+2066>" in text for text in table.source.data["text"])


@pytest.mark.browser
def test_chromium_draws_a_marked_title_in_reading_order(new_page, tmp_path: Path) -> None:
    """The rendered title reads "abc<U+202E>def…", left to right: the override reorders nothing."""
    title = "abc\u202edefghi"
    path = tmp_path / "page.html"
    export_result(_attribution(), mode="standalone", title=title).write(path)
    session = new_page(path.as_uri())
    page = session.page
    page.wait_for_selector("h1.ae-title")
    assert page.title() == "abc<U+202E>defghi"
    positions = page.evaluate(
        """() => {
          const text = document.querySelector('h1.ae-title').firstChild;
          const x = (i) => { const r = document.createRange(); r.setStart(text, i); r.setEnd(text, i + 1);
                             return r.getBoundingClientRect().left; };
          return {content: text.textContent, d: x(text.textContent.indexOf('d')), i: x(text.textContent.indexOf('i'))};
        }"""
    )
    assert positions["content"] == "abc<U+202E>defghi"
    assert positions["d"] < positions["i"], positions  # drawn left to right: an override would put "i" first
    session.assert_clean()
