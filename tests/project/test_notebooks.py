"""The worked notebooks of ``examples/notebooks`` run offline from top to bottom, and their figures draw.

Each notebook is executed by ``nbclient`` in a real IPython kernel (the bundled tiny models, ``HF_HUB_OFFLINE=1``
inherited from ``tests/conftest.py``); any cell's error fails the test. The executed notebooks are turned into
HTML by ``nbconvert`` (the ``lab`` template, what ``jupyter nbconvert --to html`` writes) and opened in Chromium
with every request but file:// blocked: each figure block draws, without a console error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.paths import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((REPO / "examples" / "notebooks").glob("*.ipynb"))
#: How many figures each notebook shows (outputs holding a figure block).
FIGURES = {"corpus_pandas": 2, "graph_ablation": 3, "translation_comparison": 2}
BLOCK = '<div class="ae-embed">'

# Per figure block of the page: its drawing state, its canvases and their drawn pixels, its figure's height.
_BLOCKS_JS = """
() => [...document.querySelectorAll('.ae-embed')].map((block) => {
  const root = block.querySelector('ae-figure').shadowRoot;
  const canvases = [];
  const walk = (node) => {
    for (const el of node.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  if (root) walk(root);
  let drawn = 0;
  for (const canvas of canvases) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] !== 0 && !(data[i] === 255 && data[i + 1] === 255 && data[i + 2] === 255)) drawn += 1;
    }
  }
  return {state: block.getAttribute('data-ae-state'), status: block.querySelector('ae-status').textContent,
          canvases: canvases.length, drawn: drawn,
          height: block.querySelector('ae-figure').getBoundingClientRect().height};
})
"""


_AMD_DEFINE = """window.define = function () { throw new Error("anonymous define() called"); };
window.define.amd = {};"""


@pytest.fixture(scope="module")
def executed() -> dict[str, object]:
    """Notebook name → the notebook after running it (each runs once per test session, when first asked for)."""
    return {}


def _run(executed: dict[str, object], path: Path):
    if path.stem not in executed:
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()  # raises CellExecutionError, with the cell and its traceback, at the first failing cell
        executed[path.stem] = notebook
    return executed[path.stem]


def _figure_outputs(notebook) -> list[str]:
    return [
        output["data"]["text/html"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if BLOCK in output.get("data", {}).get("text/html", "")
    ]


def test_the_notebooks_are_committed_without_outputs() -> None:
    assert {path.stem for path in NOTEBOOKS} == set(FIGURES)
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_runs_offline_and_shows_its_figures(executed, path: Path) -> None:
    notebook = _run(executed, path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    assert not [output for cell in code for output in cell.outputs if output.output_type == "error"]
    figures = _figure_outputs(notebook)
    assert len(figures) == FIGURES[path.stem]
    bundles = [re.findall(r'data-ae-bundle="([a-z-]+)"', figure) for figure in figures]
    carried = [name for names in bundles for name in names]
    assert carried.count("bokeh") == 1 and "bokeh" in bundles[0]  # BokehJS once per notebook, in the first figure
    assert len(carried) == len(set(carried))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_executed_notebooks_html_draws_every_figure_offline(executed, path: Path, new_page, tmp_path) -> None:
    """nbconvert's page of the executed notebook, with nbconvert's own CDN scripts (require.js, MathJax) pointed
    at local stand-ins so that nothing at all leaves the machine: every block draws, no console error.

    The require.js stand-in puts an AMD ``define`` on the page, as classic Jupyter and nbconvert's pages have,
    that fails when called: BokehJS, run by the blocks, must not register itself through it."""
    from nbconvert import HTMLExporter

    notebook = _run(executed, path)
    (tmp_path / "mathjax.js").write_text("", encoding="utf-8")
    (tmp_path / "require.js").write_text(_AMD_DEFINE, encoding="utf-8")
    exporter = HTMLExporter(template_name="lab", require_js_url="require.js", mathjax_url="mathjax.js")
    page_html, _ = exporter.from_notebook_node(notebook)
    page = tmp_path / f"{path.stem}.html"
    page.write_text(page_html, encoding="utf-8")
    session = new_page(page.as_uri())
    expected = FIGURES[path.stem]
    every_block = "[...document.querySelectorAll('.ae-embed')]"
    settled = f"() => {every_block}.length > 0 && {every_block}.every((b) => /drawn|failed/.test(b.dataset.aeState))"
    session.page.wait_for_function(settled, timeout=30_000)
    session.page.wait_for_timeout(500)  # one paint after the last view
    blocks = session.page.evaluate(_BLOCKS_JS)
    assert len(blocks) == expected and all(block["state"] == "drawn" for block in blocks), blocks
    assert all(block["height"] > 100 for block in blocks), blocks
    assert all(block["drawn"] > 1_000 for block in blocks if block["canvases"]), blocks
    assert sum(block["canvases"] > 0 for block in blocks) >= 1, blocks
    session.assert_clean()
