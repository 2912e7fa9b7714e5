"""The contribution-graph benchmark commands that ``docs/benchmarks.md`` shows run as written, at a small size.

Their full runs take minutes to hours (the page's blocks carry a skip comment, so ``test_docs`` does not
run them); here every ``python benchmarks/contributions.py ...`` line of the page runs with
``--lengths 8 --layers 1 --repeats 1`` added (a later flag wins, so the line's own configuration, device,
operations and threads stay), and the table it prints must hold a number in every cell it was asked
for: no configuration, flag or operation of the page is broken. The first line also measures peak
memory (its own processes); the others add ``--no-memory``. A ``--device cuda`` line runs where a CUDA
device is present.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from tests.support.doc_blocks import DOCS, REPO, markdown_blocks, shell_commands

PAGE = DOCS / "benchmarks.md"
SCRIPT = "benchmarks/contributions.py"
SMALL = ["--lengths", "8", "--layers", "1", "--repeats", "1"]
#: A measured cell: seconds (with its ratio to the forward pass) or MiB.
CELL = re.compile(r"\d+(\.\d+)?( \(\d+\.\d×\))?")


def documented_commands() -> list[list[str]]:
    """Every ``python benchmarks/contributions.py`` command of the page, as the shell splits it."""
    return [
        words
        for block in markdown_blocks(PAGE)
        if block.language == "shell"
        for words in shell_commands(block.code)
        if words[:2] == ["python", SCRIPT]
    ]


def test_the_page_shows_the_benchmark_for_every_config():
    arguments = [" ".join(words[2:]) for words in documented_commands()]
    for config in ("qwen2.5-0.5b", "llama-3.2-1b", "opus-mt-en-de", "nllb-600m"):
        assert any(f"--config {config}" in line for line in arguments), config
    assert "" in arguments  # the default run: GPT-2 small at every length


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(documented_commands())))
def test_a_documented_benchmark_command_runs(index):
    words = documented_commands()[index]
    if "cuda" in words and not torch.cuda.is_available():
        pytest.skip("a --device cuda command: needs a CUDA device (run it where one is lent)")
    command = [sys.executable, SCRIPT, *words[2:], *SMALL, *([] if index == 0 else ["--no-memory"])]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    header = next(line for line in done.stdout.splitlines() if line.startswith("| T |"))
    row = next(line for line in done.stdout.splitlines() if line.startswith("| 8 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
    assert len(cells) == header.count("|") - 2
    assert all(CELL.fullmatch(cell) for cell in cells), row
    if index == 0:
        assert "MiB" in header  # the memory processes ran too
