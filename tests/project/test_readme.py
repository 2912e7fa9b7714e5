"""The README's code runs as written (the machinery, shared with the docs pages' test: ``tests/support/doc_blocks.py``).

The README is the front page: its Quick start (install, serve, and CI's test command between the
``test-command`` markers, which ``.ci/run`` reads) and the tour's commands. ``tests/project/test_docs.py`` runs the
pages of ``docs/`` the same way, serves the app from the README's command for every page's client examples,
and checks that the README stays a front page whose links land on pages and headings that exist.
"""

from __future__ import annotations

import pytest

from tests.support.doc_blocks import (
    README,
    check_blocks_run_or_say_why_not,
    markdown_blocks,
    run_blocks,
    shell_commands,
)


def test_every_block_runs_or_says_why_not():
    blocks = check_blocks_run_or_say_why_not(README)
    (ci_command,) = [block for block in blocks if block.ci_command]
    assert ci_command.language == "shell" and ci_command.code.endswith("python -m pytest")
    assert sum(block.runs for block in blocks) >= 2


def test_the_parser_sees_what_the_shell_sees():
    code = 'attribution-explorer graph --text "a b" \\\n    --token 3,-1 --out g.json  # comment\npip install x && ls'
    assert shell_commands(code) == [
        ["attribution-explorer", "graph", "--text", "a b", "--token", "3,-1", "--out", "g.json"],
        ["pip", "install", "x"],
        ["ls"],
    ]
    with pytest.raises(AssertionError, match="simple commands only"):
        shell_commands("attribution-explorer --help | head")
    (fence,) = markdown_blocks(README, "intro\n<!-- readme-test: skip: too long -->\n```bash\npython x.py\n```\n")
    assert (fence.language, fence.code, fence.line, fence.skip_reason, fence.runs, fence.where) == (
        "shell",
        "python x.py",
        3,
        "too long",
        False,
        "README.md:3",
    )


def test_readme_blocks_run_as_written(workdir):
    """All blocks but the server's, in document order (later blocks read files earlier ones wrote)."""
    assert run_blocks(markdown_blocks(README)) >= 2
    for written in ("tour-graph.json", "tour-graph.html"):
        assert (workdir / written).is_file(), written
