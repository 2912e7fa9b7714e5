"""The documentation site: every page's code runs as written, the site builds, the README stays a front page.

- Every page of ``docs/`` is in ``mkdocs.yml``'s ``nav``; its ``bash`` and ``python`` blocks run in ``nav``
  order in one empty folder, by the README's rules (``tests/support/doc_blocks.py``), and the app served by the
  README's command answers every page's ``gradio_client`` examples.
- ``mkdocs build --strict`` succeeds with every proxy pointing at a closed port (nothing may be fetched): a
  broken link or anchor, or a page left out of the ``nav``, fails it (``validation`` in ``mkdocs.yml``).
- The README is the front page: under 300 lines, and every link of it that is not a web address lands on a
  page (or picture) in ``docs/`` and, with a ``#fragment``, on a heading of that page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.doc_blocks import (
    DOCS,
    MKDOCS_CONFIG,
    README,
    REPO,
    Servers,
    check_blocks_run_or_say_why_not,
    documents,
    markdown_blocks,
    nav_pages,
    run_blocks,
    run_python_block,
    run_shell_block,
)

MAX_README_LINES = 300
#: Inline Markdown links and images: ``[text](target)`` / ``![alt](target "title")``.
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: What the pages' commands write, in the folder the test runs them in.
WRITTEN = (
    "result.json",
    "contrast.json",
    "contrast.html",
    "graph.json",
    "ablate.json",
    "patching.json",
    "patching.html",
    "route.json",
    "fig.html",
    "graph.html",
    "post.html",
    "post.iframe.html",
    "post-offline.html",
    "post-offline.iframe.html",
    "embed.html",
    "report.html",
    "runs/synth/run.json",
)


def test_every_page_is_in_the_nav_and_runs_or_says_why_not():
    pages = nav_pages()
    assert len(pages) == len(set(pages))
    assert set(pages) == set(DOCS.glob("*.md")), "add the page to mkdocs.yml's nav (or delete it)"
    runnable = [block for page in pages for block in check_blocks_run_or_say_why_not(page) if block.runs]
    assert len(runnable) >= 12


@pytest.mark.slow
def test_docs_blocks_run_as_written(workdir):
    """Every page's blocks but the server's, in ``nav`` order, in one folder: a page may read what an earlier
    one wrote (the Export page draws the results the Feature attribution and Contribution graph pages made)."""
    ran = run_blocks([block for page in nav_pages() for block in markdown_blocks(page)])
    assert ran >= 20
    missing = [name for name in WRITTEN if not (workdir / name).is_file()]
    assert not missing, missing


@pytest.mark.slow
@pytest.mark.server
def test_serve_and_the_client_examples(workdir):
    """``attribution-explorer serve`` as the README writes it, then every ``gradio_client`` example against it."""
    servers = Servers()
    try:
        blocks = [block for document in documents() for block in markdown_blocks(document) if block.runs]
        assert sum(run_shell_block(block, serve=servers) for block in blocks if block.language == "shell") >= 2
        assert len(servers.processes) == 1  # the README and the Install page show the same command
        client_blocks = [block for block in blocks if block.needs_server]
        assert [block.source for block in client_blocks] == ["docs/app.md"]
        for block in client_blocks:
            run_python_block(block, port=servers.port)
    finally:
        servers.stop()


def test_the_site_builds_strict_and_offline(tmp_path):
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens, so any fetch fails the build
    env = {
        **os.environ,
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "http_proxy": closed,
        "https_proxy": closed,
        "NO_PROXY": "",
        "no_proxy": "",
        "NO_MKDOCS_2_WARNING": "1",
    }
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_CONFIG)]
    built = subprocess.run(
        [*command, "--site-dir", str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "WARNING" not in built.stderr, built.stderr[-3000:]
    for page in nav_pages():
        built_page = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
        assert built_page.is_file(), page
    for picture in (DOCS / "images").glob("*.png"):
        assert (site / "images" / picture.name).is_file(), picture


def headings(page: Path) -> set[str]:
    """The anchors of a page's headings, as mkdocs makes them (its ``toc`` extension's ``slugify``)."""
    from markdown.extensions.toc import slugify

    anchors, in_fence = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (heading := re.match(r"^#{1,6} (.+)$", line)):
            anchors.add(slugify(re.sub(r"[`*_\[\]]", "", heading.group(1)), "-"))
    return anchors


def test_the_readme_is_a_front_page_whose_links_land():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < MAX_README_LINES
    local = [match["target"] for match in LINK.finditer(text) if not re.match(r"[a-z]+:", match["target"])]
    assert len(local) >= 10
    for target in local:
        path, _, anchor = target.partition("#")
        assert path, f"{target}: the README's own sections are not link targets; link a docs page"
        page = (REPO / path).resolve()
        assert page.is_relative_to(DOCS) and page.is_file(), f"{target}: not a file in docs/"
        if anchor:
            assert anchor in headings(page), f"{target}: no such heading in {path}"
    pictures = [target for target in local if target.endswith(".png")]
    assert len(pictures) >= 3
    for picture in pictures:
        assert (REPO / picture).stat().st_size < 200_000, f"{picture}: keep the pictures small"


def test_a_broken_readme_link_is_caught(monkeypatch, tmp_path):
    """The link check above fails on a page or heading that does not exist."""
    broken = tmp_path / "README.md"
    broken.write_text("# x\n\n[a](docs/app.md#no-such-heading) [b](docs/development.md#tests)\n" * 5)
    monkeypatch.setattr(sys.modules[__name__], "README", broken)
    with pytest.raises(AssertionError, match="no such heading"):
        test_the_readme_is_a_front_page_whose_links_land()


def test_features_page_example_runs(tmp_path, monkeypatch):
    """The Features page's worked example on the bundled model and its SAE, run as written."""
    page = DOCS / "features.md"
    (block,) = [block for block in markdown_blocks(page) if block.language == "python"]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.code, block.where, "exec"), namespace)
    view, steered = namespace["view"], namespace["steered"]
    assert view.node == "decoder:2:after_ffn:1" and 0 < view.reconstruction_share < 1
    assert steered.predictions[0].top_after[0][0] == view.features[0].promoted[0][0]  # what the feature promotes
    assert namespace["comparison"].divergence_layer == 0 and (tmp_path / "layers.json").is_file()
