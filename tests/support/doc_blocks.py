"""The documentation's code runs as written: the machinery shared by ``test_readme.py`` and ``test_docs.py``.

Every ``bash`` and ``python`` block of ``README.md`` and of the pages of ``docs/`` (in the order of
``mkdocs.yml``'s ``nav``), in order, offline, in one empty folder:

- ``attribution-explorer …`` lines run through the CLI's ``main`` in this process (the console script is
  ``space.cli:main``), split as the shell would (quotes, ``\\`` continuations, ``&&``, comments);
  a Hub push (``--push``) must fail with one clean ``error:`` line and keep the local file;
- ``attribution-explorer serve`` runs as a real server (on a free port through ``GRADIO_SERVER_PORT``),
  and the blocks that talk to ``127.0.0.1:7860`` are pointed at it (slow test);
- ``python …`` lines run as processes; Python blocks run in this interpreter, one namespace each;
- ``pip install …`` lines are setup: CI runs them in the README's test command.

A block the tests do not run is not ``bash``/``python`` (a template: ``text``, ``toml``) or follows a
``<!-- readme-test: skip: reason -->`` comment; the block between the README's ``test-command`` markers is CI's.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from space.cli import EXIT_USER_ERROR, main
from tests.support.paths import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MKDOCS_CONFIG = REPO / "mkdocs.yml"
LANGUAGES = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python", "py": "python"}
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(?P<reason>\S.*?)\s*-->")
SERVER = "127.0.0.1:7860"
SHELL_OPERATORS = {";", "|", "||", "&", ">", ">>", "<", "(", ")"}


def nav_pages() -> list[Path]:
    """The pages of ``docs/`` in the order of ``mkdocs.yml``'s ``nav`` (sections flattened)."""
    import yaml

    def pages(entries: list) -> list[str]:
        found: list[str] = []
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            found += pages(value) if isinstance(value, list) else [value]
        return found

    nav = yaml.safe_load(MKDOCS_CONFIG.read_text(encoding="utf-8"))["nav"]
    return [DOCS / page for page in pages(nav)]


def documents() -> list[Path]:
    """Everything a reader runs commands from, in reading order: the README, then the docs pages."""
    return [README, *nav_pages()]


def name_of(document: Path) -> str:
    return document.relative_to(REPO).as_posix()


@dataclass(frozen=True)
class Block:
    language: str  # "shell", "python", or the fence's own word for blocks that are never run
    code: str
    line: int  # of the opening fence, 1-based
    skip_reason: str | None  # from a readme-test skip comment right above the fence
    ci_command: bool  # between the test-command markers: CI runs it
    source: str = "README.md"  # the document it is in, relative to the repository

    @property
    def runs(self) -> bool:
        return self.language in ("shell", "python") and self.skip_reason is None and not self.ci_command

    @property
    def needs_server(self) -> bool:
        return SERVER in self.code

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def markdown_blocks(document: Path = README, text: str | None = None) -> list[Block]:
    """The fenced code blocks of ``document`` (or of ``text``, named as ``document``), in order."""
    lines = (document.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        above = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        skip = SKIP.fullmatch(above)
        language = fence.group(1)
        blocks.append(
            Block(
                language=LANGUAGES.get(language, language),
                code="\n".join(lines[index + 1 : end]),
                line=index + 1,
                skip_reason=skip.group("reason") if skip else None,
                ci_command=above == "<!-- test-command -->",
                source=name_of(document),
            )
        )
        index = end + 1
    return blocks


def check_blocks_run_or_say_why_not(document: Path) -> list[Block]:
    """A skip comment sits right above a block that would run, and no command hides in a ``text`` block."""
    blocks = markdown_blocks(document)
    for block in blocks:
        assert block.skip_reason is None or block.language in ("shell", "python"), (
            f"{block.where}: a skip comment above a block that would not run anyway"
        )
        if block.language in ("", "text"):  # a template or a listing: it must not read like a command
            first = block.code.lstrip().split(maxsplit=1)[0] if block.code.strip() else ""
            assert first not in ("attribution-explorer", "python", "pip"), (
                f"{block.where}: a command in a block marked as text: make it a runnable bash block "
                "or label it as a template"
            )
    comments = [line for line in document.read_text(encoding="utf-8").splitlines() if SKIP.fullmatch(line.strip())]
    assert len(comments) == sum(block.skip_reason is not None for block in blocks), (
        f"{name_of(document)}: a skip comment not above a block"
    )
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The block's simple commands, as the shell splits them; other shell syntax is refused."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token == "&&":
                commands.append(current)
                current = []
            elif token in SHELL_OPERATORS:
                raise AssertionError(f"the documentation test runs simple commands only, not {token!r}: {line}")
            else:
                current.append(token)
        if current:
            commands.append(current)
    return commands


def run_cli(words: list[str], where: str) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(words[1:])
        except SystemExit as exit_:  # argparse's own errors (and --help)
            status = exit_.code
    command = shlex.join(words)
    if "--push" in words:  # offline: the push fails with one line, and the page written before it is kept
        errors = [line for line in stderr.getvalue().splitlines() if line.startswith("error:")]
        assert status == EXIT_USER_ERROR and len(errors) == 1, f"{where}: {command}\n{stderr.getvalue()[-2000:]}"
        assert "Traceback" not in stderr.getvalue()
        assert Path(words[words.index("--out") + 1]).is_file(), f"{where}: {command} lost its local file"
    else:
        assert status == 0, f"{where}: {command} exited {status}\n{stderr.getvalue()[-3000:]}"


def run_shell_block(block: Block, serve: Callable[[list[str], str], None] | None = None) -> int:
    """Run the block's commands; ``serve`` commands go to ``serve`` (skipped without one). Returns how many ran."""
    ran = 0
    for words in shell_commands(block.code):
        program = words[0]
        if program == "pip":
            continue  # setup: CI's test command installs the same way
        if words[:2] == ["attribution-explorer", "serve"]:
            if serve is None:
                continue
            serve(words, block.where)
        elif serve is not None:
            continue
        elif program == "attribution-explorer":
            run_cli(words, block.where)
        elif program == "python":
            completed = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, timeout=600)
            assert completed.returncode == 0, f"{block.where}: {shlex.join(words)}\n{completed.stderr[-3000:]}"
        else:
            raise AssertionError(f"{block.where}: the documentation test does not know how to run {program!r}")
        ran += 1
    return ran


def run_python_block(block: Block, port: int | None = None) -> None:
    code = block.code if port is None else block.code.replace(SERVER, f"127.0.0.1:{port}")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, block.where, "exec"), {"__name__": "__readme__"})


def run_blocks(blocks: list[Block]) -> int:
    """Run every block that runs without the server, in order (later blocks read files earlier ones wrote)."""
    ran = 0
    for block in blocks:
        if not block.runs or block.needs_server:
            continue
        if block.language == "shell":
            ran += run_shell_block(block)
        else:
            run_python_block(block)
            ran += 1
    return ran


class Servers:
    """Runs the documentation's ``serve`` commands on free ports (``GRADIO_SERVER_PORT``) until the test ends.

    A command already served (the README's Quick start and the Install page show the same one) is served once.
    """

    def __init__(self) -> None:
        self.processes: dict[tuple[str, ...], subprocess.Popen] = {}
        self.port: int | None = None

    def __call__(self, words: list[str], where: str) -> None:
        if tuple(words) in self.processes:
            return
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        script = Path(sys.executable).with_name("attribution-explorer")
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "space.cli"]
        env = {**os.environ, "GRADIO_SERVER_PORT": str(self.port), "HF_HUB_OFFLINE": "1"}
        server = subprocess.Popen(
            [*command, *words[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.processes[tuple(words)] = server
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, f"{where}: {shlex.join(words)} exited:\n{server.stderr.read()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{where}: {shlex.join(words)} did not answer within 300 s")

    def stop(self) -> None:
        for server in self.processes.values():
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
