"""The local engine's torch threads: chosen from the work per operation unless given, and restored after."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from attribution.corpus import FieldMap, ModelSpec, TaskConfig, read_records, run_corpus
from attribution.corpus.local_engine import WORK_PER_THREAD, auto_threads
from tests.support.corpus_data import translation_rows, write_jsonl


def test_auto_threads_grow_with_the_work_and_stop_at_the_cores() -> None:
    assert auto_threads(690_944, 8, cores=16) == 1  # the bundled translation model: one thread
    assert auto_threads(124_000_000, 8, cores=16) == 124_000_000 * 8 // WORK_PER_THREAD == 4  # GPT-2 small
    assert auto_threads(124_000_000, 8, cores=2) == 2
    assert auto_threads(7_000_000_000, 1, cores=64) == 35 and auto_threads(1, 1, cores=0) == 1


def test_a_run_uses_the_chosen_threads_records_them_and_restores_the_process_setting(tmp_path: Path) -> None:
    records = read_records(write_jsonl(tmp_path / "pairs.jsonl", translation_rows(2)), FieldMap())
    seen: list[int] = []
    before = torch.get_num_threads()
    task = TaskConfig(methods=("saliency",))
    torch.set_num_threads(2)
    try:
        run_corpus(records, tmp_path / "auto", model=ModelSpec("tiny-synth-translate"), task=task,
                   on_batch=lambda _: seen.append(torch.get_num_threads()))  # fmt: skip
        assert seen == [1] and torch.get_num_threads() == 2
        assert json.loads((tmp_path / "auto" / "run.json").read_text())["threads"] == 1
        seen.clear()
        run_corpus(records, tmp_path / "given", model=ModelSpec("tiny-synth-translate", threads=2), task=task,
                   on_batch=lambda _: seen.append(torch.get_num_threads()))  # fmt: skip
        assert seen == [2]
    finally:
        torch.set_num_threads(before)
