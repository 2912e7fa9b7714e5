"""Results drawn live in a real JupyterLab: a server on 127.0.0.1, a notebook run from its menu in Chromium.

What ``tests/project/test_notebooks.py`` checks on nbconvert's page, here in the front end researchers use: JupyterLab
renders each output's HTML and runs its scripts itself. The notebook shows saved results (no model), one of them
twice: every figure draws, BokehJS comes with the first output only, nothing is requested outside 127.0.0.1
and nothing is logged as an error.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.golden_results import GOLDEN_DIR

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyterlab")

GOLDEN = GOLDEN_DIR
_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on a free local port, its files, settings and workspaces in a scratch folder."""
    root = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {server.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.5)
        yield f"{base}/lab/workspaces/test/tree/{{name}}?reset&token={token}", root
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _notebook() -> object:
    from nbformat.v4 import new_code_cell, new_notebook

    load = "from attribution.results import load_result_file\n"
    cells = [
        f"{load}heatmap = load_result_file({str(GOLDEN / 'attribution-causal.json')!r})\nheatmap",
        f"graph = load_result_file({str(GOLDEN / 'graph-causal.json')!r})\ngraph",
        "heatmap",
    ]
    kernel = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    return new_notebook(cells=[new_code_cell(code) for code in cells], metadata=kernel)


@pytest.mark.slow
@pytest.mark.browser
def test_a_notebook_run_in_jupyterlab_draws_every_figure(lab, new_page) -> None:
    url, root = lab
    nbformat.write(_notebook(), root / "live.ipynb")
    session = new_page(url.format(name="live.ipynb"), allowed_origin=url.split("/lab/")[0])
    page = session.page
    page.wait_for_selector(f"{_PANEL} .jp-Cell", timeout=60_000)
    page.wait_for_function("() => document.body.innerText.includes('| Idle')", timeout=60_000)  # the kernel is up
    page.click("text=Run", timeout=10_000)
    page.click("text=Run All Cells", timeout=10_000)
    blocks = f"[...document.querySelectorAll('{_PANEL} .ae-embed')]"
    settled = f"() => {blocks}.length === 3 && {blocks}.every((b) => /drawn|failed/.test(b.dataset.aeState))"
    page.wait_for_function(settled, timeout=120_000)
    page.wait_for_timeout(500)
    found = page.evaluate(
        f"() => {blocks}.map((b) => ({{state: b.dataset.aeState, status: b.querySelector('ae-status').textContent,"
        " height: b.querySelector('ae-figure').getBoundingClientRect().height,"
        " bundles: [...b.querySelectorAll('script[data-ae-bundle]')].map((s) => s.dataset.aeBundle)}))"
    )
    assert [block["state"] for block in found] == ["drawn"] * 3, found
    assert all(block["height"] > 100 for block in found), found
    assert [block["bundles"] for block in found] == [["bokeh"], ["bokeh-widgets"], []]
    pixels = session.drawn_pixels()
    assert pixels["drawn"] > 3_000, pixels
    session.assert_clean()
