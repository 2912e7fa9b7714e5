"""The hostile-input corpus against the command line: every case ends with one clear line and exit status 2.

Never a traceback, never a partial output file, and the next good command still works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attribution import validation
from attribution.models import bundled_model_path
from space.cli import main
from tests.hostile_inputs import (
    TEXT_CASES,
    Case,
    corrupt_model_folder,
    result_json_cases,
    valid_attribution,
)

REPO = Path(__file__).resolve().parents[1]
CAP = 200_000
IOI = "When Mary and John went to the store, John gave a drink to"


def _run(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capfd.readouterr().err


def _assert_one_clear_line(code: int, stderr: str, expect: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert "error:" in last and re.search(expect, last), last


@pytest.fixture(autouse=True)
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 kB result cap (instead of 64 MiB), so the oversize case stays small."""
    monkeypatch.setattr(validation, "DEFAULT_MAX_RESULT_BYTES", CAP)


@pytest.mark.parametrize(
    "case",
    [c for c in result_json_cases(max_bytes=CAP, server_file=Path("/unused")) if not c.value.startswith("/")],
    ids=lambda c: c.name,
)
def test_export_of_hostile_result_json(case: Case, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "result.json"
    path.write_text(case.value, encoding="utf-8")
    out = tmp_path / "page.html"
    code, stderr = _run(["export", str(path), "--out", str(out)], capfd)
    _assert_one_clear_line(code, stderr, rf"cannot read a result from {re.escape(str(path))}: .*{case.expect}")
    assert not out.exists()


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("/dev/zero", r"/dev/zero is larger than the 0\.191 MB accepted"),
        ("/etc/passwd", r"not valid JSON"),
        ("/no/such/result.json", r"result file not found: /no/such/result\.json"),
        ("/etc", r"cannot read /etc: Is a directory"),
    ],
)
def test_export_of_paths_that_are_not_results(
    path: str, expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, stderr = _run(["export", path, "--out", str(tmp_path / "page.html")], capfd)
    _assert_one_clear_line(code, stderr, expect)
    assert not (tmp_path / "page.html").exists()


def test_export_title_with_a_lone_surrogate(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    result = tmp_path / "result.json"
    valid_attribution().to_json(result)
    code, stderr = _run(["export", str(result), "--out", str(tmp_path / "p.html"), "--title", "a\udcffb"], capfd)
    _assert_one_clear_line(code, stderr, r"The --title is not valid text: character 2 is a lone surrogate")


@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("command", ["attribute", "graph"])
def test_hostile_texts(case: Case, command: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    code, stderr = _run([command, "--model", "tiny-ioi-gpt2", "--text", case.value, "--out", str(out)], capfd)
    _assert_one_clear_line(code, stderr, case.expect.replace("the input text", "the text"))
    assert not out.exists()
    code, stderr = _run(
        [command, "--model", "tiny-ioi-gpt2", "--text", IOI, "--target", case.value, "--out", str(out)], capfd
    )
    _assert_one_clear_line(code, stderr, case.expect)


@pytest.mark.parametrize(
    ("arguments", "expect"),
    [
        (["--max-tokens", "-1"], r"argument --max-tokens: must be at least 1, not -1"),
        (["--max-tokens", "many"], r"argument --max-tokens: expected a whole number, not 'many'"),
        (["--max-new-tokens", "0"], r"argument --max-new-tokens: must be at least 1, not 0"),
        (["--device", "bogus"], r"Unknown device 'bogus': use cpu, cuda, cuda:N, mps or auto"),
        (["--device", "cuda:7"], r"device 'cuda:7' was asked for but no CUDA GPU is available here|does not exist"),
        (["--method", "magic"], r"Unknown attribution method 'magic'; choose one of: saliency"),
        (["--step-scores", "loss"], r"Unknown step score 'loss'"),
    ],
)
def test_bad_attribute_options(
    arguments: list[str], expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["attribute", "--model", "tiny-ioi-gpt2", "--text", IOI, "--out", str(tmp_path / "r.json"), *arguments]
    code, stderr = _run_catching_exit(argv, capfd)
    _assert_one_clear_line(code, stderr, expect)


@pytest.mark.parametrize(
    ("arguments", "expect"),
    [
        (["--top-k", "1000000"], r"argument --top-k: must be from 0 to 100, not 1000000"),
        (["--threshold", "nan"], r"--threshold must be in \[0, 1\), not nan"),
        (["--token", "99"], r"Token index 99 is out of range"),
    ],
)
def test_bad_graph_options(
    arguments: list[str], expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["graph", "--model", "tiny-ioi-gpt2", "--text", IOI, "--out", str(tmp_path / "g.json"), *arguments]
    code, stderr = _run_catching_exit(argv, capfd)
    _assert_one_clear_line(code, stderr, expect)


def _run_catching_exit(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """argparse refuses bad option values itself (exit 2, usage + one error line)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capfd.readouterr().err


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_weights_are_one_line(how: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = corrupt_model_folder(bundled_model_path("tiny-ioi-gpt2"), tmp_path / f"{how}-model", how=how)
    code, stderr = _run(["attribute", "--model", str(folder), "--text", IOI, "--out", str(tmp_path / "r.json")], capfd)
    _assert_one_clear_line(code, stderr, rf"Cannot load '{re.escape(str(folder))}': .*(header|deserializ)")


@pytest.mark.parametrize(
    ("model", "expect"),
    [
        ("/etc", r"'/etc' is not a model folder: it has no config\.json"),
        ("/no/such/folder", r"No such model folder: '/no/such/folder'"),
        ("model\udcff", r"The model id is not valid text"),
    ],
)
def test_model_paths_that_are_not_models(
    model: str, expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, stderr = _run(["attribute", "--model", model, "--text", IOI, "--out", str(tmp_path / "r.json")], capfd)
    _assert_one_clear_line(code, stderr, expect)


def test_invalid_utf8_on_the_real_command_line_and_then_a_good_command(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates: one line, then the next command works."""
    executable = Path(sys.executable).with_name("attribution-explorer")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "space.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = tmp_path / "r.json"
    bad = [*command, "attribute", "--model", "tiny-ioi-gpt2", "--text", b"When Mary \xff\xfe and John", "--out", out]
    completed = subprocess.run(bad, cwd=REPO, env=env, capture_output=True, timeout=300)
    stderr = completed.stderr.decode("utf-8", "replace")
    assert completed.returncode == 2 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: The input text is not valid text: character 11")
    assert not out.exists()
    good = [*command, "attribute", "--model", "tiny-ioi-gpt2", "--text", IOI, "--max-new-tokens", "1", "--out", out]
    completed = subprocess.run(good, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert completed.returncode == 0, completed.stderr.decode()
    assert out.is_file()
