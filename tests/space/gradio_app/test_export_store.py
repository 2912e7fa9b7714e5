"""space.gradio_app.export_store: download files bounded by age and total size, written whole or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attribution.errors import InvalidInputError
from attribution.models import ModelCache
from attribution.validation import safe_file_name
from space.gradio_app import context
from space.gradio_app.config import SpaceConfig, offered_models
from space.gradio_app.export_store import ExportStore, remove_stale_folders
from space.gradio_app.tabs import export as export_tab
from space.gradio_app.tabs import graph as graph_tab


def test_total_size_is_bounded_and_the_oldest_go_first(tmp_path: Path) -> None:
    store = ExportStore(tmp_path, max_bytes=1000)
    paths = []
    for i in range(5):
        paths.append(store.write(f"page{i}.html", "x" * 400))
        os.utime(paths[-1], (time.time() - 100 + i,) * 2)  # distinct ages, oldest first
    assert store.n_bytes <= 1000
    assert [p.exists() for p in paths] == [False, False, False, True, True]
    assert len(list(store.folder.iterdir())) == 2  # emptied sub-folders are removed too
    with pytest.raises(OSError, match="larger than the 1000 bytes kept"):
        store.write("huge.html", "x" * 1001)


def test_files_past_their_age_are_deleted_at_the_next_write(tmp_path: Path) -> None:
    store = ExportStore(tmp_path, max_age_s=60)
    old = store.write("old.json", "{}")
    os.utime(old, (time.time() - 61,) * 2)
    new = store.write("new.json", "{}")
    assert not old.exists() and not old.parent.exists() and new.exists()


def test_names_are_sanitised_and_writes_never_collide(tmp_path: Path) -> None:
    store = ExportStore(tmp_path)
    first, second = store.write("../../etc/passwd", "a"), store.write("../../etc/passwd", "b")
    assert first.name == second.name == "etc-passwd" and first != second
    assert first.read_text() == "a" and second.read_text() == "b"
    assert all(store.folder in p.parents for p in (first, second))
    assert safe_file_name("...") == "export" and safe_file_name("a b/c.html") == "a-b-c.html"


def test_a_failed_export_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = SpaceConfig()
    ctx = context.AppContext(
        config, offered_models(config, hub_reachable=False), ModelCache(), ExportStore(tmp_path / "exports")
    )
    graph_json = graph_tab.run_graph(ctx, "tiny-ioi-gpt2", "When Mary and John went", "", 0.04, False, "-1").graph_json

    def broken_export(*args, **kwargs):
        raise RuntimeError("the exporter failed half-way")

    monkeypatch.setattr("exporters.export_result", broken_export)
    with pytest.raises(RuntimeError):
        export_tab.make_export(ctx, graph_json, "contribution graph", "HTML page (self-contained, works offline)")
    with pytest.raises(InvalidInputError, match="not a result of this app"):
        export_tab.make_export(ctx, "/etc/passwd", "contribution graph", "Result JSON")
    assert not ctx.exports.folder.exists()


def test_folders_of_dead_processes_are_removed_and_a_closed_store_leaves_nothing(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"app-{dead.stdout.strip()}-00ff"
    stale.mkdir()
    (stale / "x.html").write_text("x")
    alive = tmp_path / f"app-{os.getpid()}-00ff"
    alive.mkdir()
    unrelated = tmp_path / "not-ours"
    unrelated.mkdir()
    assert remove_stale_folders(tmp_path) == [stale]
    assert alive.exists() and unrelated.exists()
    store = ExportStore(tmp_path)
    store.write("page.html", "x")
    store.close()
    assert not store.folder.exists()
    # At interpreter exit (Ctrl-C on the app included) the store removes its folder by itself.
    script = (
        f"from space.gradio_app.export_store import ExportStore; print(ExportStore({str(tmp_path)!r}).write('a', 'b'))"
    )
    written = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert not Path(written.stdout.strip()).parent.parent.exists()
