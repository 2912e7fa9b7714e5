"""The hostile-input corpus against the command line: every case ends with one clear line and exit status 2.

Never a traceback, never a partial output file, and the next good command still works. Covers every
command that reads user input: attribute, graph, intervene, patch, export (every result kind), corpus
(data files and options) and report (run folders that were tampered with).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from attribution import validation
from attribution.models import bundled_model_path
from space.cli import main
from tests.support import texts
from tests.support.hostile_inputs import (
    HUGE_INTEGER,
    HUGE_INTEGER_EXPECT,
    TEXT_CASES,
    Case,
    corrupt_model_folder,
    huge_integer_json,
    result_json_cases,
    valid_attribution,
)
from tests.support.paths import REPO

CAP = 200_000
IOI = texts.IOI_PROMPT


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
        ("/dev/zero", r"/dev/zero is a character device, not a regular file"),
        ("/etc/passwd", r"not valid JSON"),
        ("/no/such/result.json", r"result file not found: /no/such/result\.json"),
        ("/etc", r"/etc is a folder, not a regular file"),
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


@pytest.mark.slow
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


# ------------------------------------------------------------------------------ interventions: intervene, patch

IOI_COUNTERFACTUAL = texts.IOI_COUNTERFACTUAL
INTERVENTION_COMMANDS = {
    "intervene": ["intervene", "--model", "tiny-ioi-gpt2", "--component", "decoder:1:head:0", "--mode", "patch"],
    "patch": ["patch", "--model", "tiny-ioi-gpt2", "--maps", "head"],
}


@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("command", sorted(INTERVENTION_COMMANDS))
def test_hostile_texts_in_interventions(
    case: Case, command: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The text, the counterfactual and the target each get one line naming which of them is wrong."""
    out = tmp_path / "out.json"
    texts = {"--text": IOI, "--counterfactual": IOI_COUNTERFACTUAL, "--target": " Mary"}
    for option, role in (("--text", "input text"), ("--counterfactual", "counterfactual"), ("--target", "target")):
        given = {**texts, option: case.value}
        argv = [*INTERVENTION_COMMANDS[command], *(x for pair in given.items() for x in pair), "--out", str(out)]
        code, stderr = _run(argv, capfd)
        _assert_one_clear_line(code, stderr, rf"The {role} is .*{case.expect}")
    assert not out.exists()


@pytest.mark.parametrize(
    ("arguments", "expect"),
    [
        (["--component", "<script>alert(1)</script>"], r"Cannot read the component '<script>alert\(1\)</script>'"),
        (["--component", "x" * 100_000], r"A component id is at most 200 characters long"),
        (["--component", "decoder:99:head:0"], r"layer 99 does not exist"),
        (["--component", "decoder:1:head:0", "--top-k", "1000000"], r"top_k must be an integer from 1 to 100"),
        (["--component", "decoder:1:head:0", "--contrast-token", "\udcff"], r"The contrast token is not valid text"),
        (["--component", "decoder:1:head:0", "--target-token", "x" * 5000], r"The target token is one token"),
        (["--component", "decoder:1:head:0", "--mode", "mean", "--reference", "a\udcff"], r"The reference is not"),
        (["--component", "decoder:1:head:0", "--mode", "patch"], r"--mode patch needs --counterfactual"),
        (["--component", "decoder:1:head:0", "--mode", "patch", "--counterfactual", "Mary"], r"same length"),
        (["--route", "--seeds", "100000"], r"seeds must be an integer from 0 to 64, not 100000"),
        (["--route", "--threshold", "nan"], r"--threshold must be in \[0, 1\), not nan"),
        (["--route", "--token", "all"], r"--route tests one root token"),
    ],
)
def test_bad_intervene_options(
    arguments: list[str], expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code, stderr = _run_catching_exit(
        ["intervene", "--model", "tiny-ioi-gpt2", "--text", IOI, "--out", str(out), *arguments], capfd
    )
    _assert_one_clear_line(code, stderr, expect)
    assert not out.exists()


@pytest.mark.parametrize(
    ("arguments", "expect"),
    [
        (["--batch-size", "0"], r"argument --batch-size: must be at least 1, not 0"),
        (["--maps", "encoder_head"], r"Unknown map 'encoder_head' for this model; choose from head, position"),
        (["--token", "99"], r"Token index 99 is out of range"),
        (["--contrast-token", "\ud800"], r"The contrast token is not valid text"),
        (["--no-exact", "--no-approximate"], r"leave nothing to compute"),
    ],
)
def test_bad_patch_options(
    arguments: list[str], expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    argv = [
        "patch",
        "--model",
        "tiny-ioi-gpt2",
        "--text",
        IOI,
        "--counterfactual",
        IOI_COUNTERFACTUAL,
        "--out",
        str(out),
    ]
    code, stderr = _run_catching_exit([*argv, *arguments], capfd)
    _assert_one_clear_line(code, stderr, expect)
    assert not out.exists()


# ---------------------------------------------------------------------------------- corpus runs: corpus, report

CORPUS = ["corpus", "--model", "tiny-synth-translate", "--methods", "saliency"]


def _data_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("data", "extra", "expect"),
    [
        ("/dev/zero", ["--format", "jsonl"], r"zero is a character device, not a regular file"),
        ("/etc/passwd", ["--format", "jsonl"], r"passwd, line 1: not valid JSON"),
        ("/no/such/data.jsonl", [], r"Data not found: /no/such/data\.jsonl\."),  # the path tried, in full
        ("bad-utf8.jsonl", [], r"bad-utf8\.jsonl, line 1: not UTF-8 text"),
        ("deep.jsonl", [], r"deep\.jsonl, line 1: JSON nested too deeply"),
        ("list.jsonl", [], r"list\.jsonl, row 1: expected an object with fields, not list"),
        ("fields.jsonl", [], r"fields\.jsonl has no text field 'source'; its rows have the fields 'text'"),
        ("data.jsonl", ["--method-params", "[" * 100_000], r"--method-params is nested too deeply"),
        ("data.jsonl", ["--method-params", '{"saliency": [1]}'], r"--method-params must map methods to parameters"),
        ("data.jsonl", ["--method-params", '{"lime": {}}'], r"Parameters given for 'lime', which is not one of"),
        ("data.jsonl", ["--batch-size", "-3"], r"argument --batch-size: must be at least 1, not -3"),
        ("data.jsonl", ["--metrics", "magic"], r"Unknown metric 'magic'"),
        ("data.jsonl", ["--text-field", "a\udcffb"], r"has no text field 'a\\udcffb'"),
    ],
)
def test_hostile_corpus_data_and_options(
    data: str, extra: list[str], expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    files = {
        "bad-utf8.jsonl": b'\xff\xfe{"source": "a"}\n',
        "deep.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "list.jsonl": b"[1, 2]\n",
        "fields.jsonl": b'{"text": "the cat"}\n',
        "data.jsonl": b'{"source": "the cat sees a bird", "target": "ka vesa mi avi vidas"}\n',
    }
    path = _data_file(tmp_path, data, files[data]) if data in files else Path(data)
    out = tmp_path / "run"
    code, stderr = _run_catching_exit([*CORPUS, "--data", str(path), "--out", str(out), *extra], capfd)
    _assert_one_clear_line(code, stderr, expect)
    assert not (out / "shards").exists()


@pytest.mark.parametrize(
    ("out", "expect"), [("/dev/zero", r"/dev/zero is a file; give a folder"), ("/etc", r"/etc is not empty and holds")]
)
def test_corpus_out_must_be_a_run_folder(
    out: str, expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = _data_file(tmp_path, "data.jsonl", b'{"source": "the cat sees a bird"}\n')
    code, stderr = _run([*CORPUS, "--data", str(data), "--out", out], capfd)
    _assert_one_clear_line(code, stderr, expect)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> Path:
    """A real two-record run folder, copied by each test that tampers with it."""
    folder = tmp_path_factory.mktemp("corpus")
    data = folder / "pairs.jsonl"
    rows = [
        {"source": "the old cat sees a bird quickly", "target": "ka miru vesa mi avi rapide vidas"},
        {"source": "the dog sees a cat", "target": "ka grano mi vesa vidas"},
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert main([*CORPUS, "--data", str(data), "--out", str(folder / "run")]) == 0
    return folder / "run"


def _tampered(corpus_run: Path, tmp_path: Path, change: Callable[[Path], None]) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(corpus_run, copy)
    change(copy)
    return copy


def _manifest_with(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def write(run: Path) -> None:
        manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
        change(manifest)
        (run / "run.json").write_text(json.dumps(manifest), encoding="utf-8")

    return write


def _rows_with(change: Callable[[list[dict]], None]) -> Callable[[Path], None]:
    def write(run: Path) -> None:
        import pyarrow.parquet as pq

        (shard,) = sorted((run / "shards").glob("*.parquet"))
        table = pq.read_table(shard)
        rows = table.to_pylist()
        change(rows)
        pq.write_table(table.from_pylist(rows, schema=table.schema), shard)

    return write


def _set_result_file(rows: list[dict], value: str) -> None:
    rows[0]["result_file"] = value


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (
            lambda run: (run / "run.json").unlink() or (run / "run.json").symlink_to("/dev/zero"),
            r"run\.json is a character device, not a regular file|run is a folder, not a regular file",
        ),
        (lambda run: (run / "run.json").write_bytes(b"{" + b" " * 2_000_000 + b"}"), r"larger than the 0\.954 MB"),
        (
            lambda run: (run / "run.json").write_text("{not json"),
            r"run\.json is not a readable corpus run manifest: .*not valid JSON",
        ),
        (_manifest_with(lambda m: m.update(schema="comparison")), r"`schema` must be 'corpus-run'"),
        (
            _manifest_with(lambda m: m["task"].update(methods="saliency")),
            r"`task\.methods` must be a list, not a string",
        ),
        (
            _manifest_with(lambda m: m["task"].update(graph_threshold="high")),
            r"`task\.graph_threshold` must be a number",
        ),
        (
            _manifest_with(lambda m: m["task"].update(method_params={"saliency": [1]})),
            r"`task\.method_params\.saliency` must be an object",
        ),
        (_manifest_with(lambda m: m.update(model=["tiny"])), r"`model` must be an object, not a list"),
        (_manifest_with(lambda m: m["data"].update(n_records="two")), r"`data\.n_records` must be a whole number"),
        (_manifest_with(lambda m: m.update(schema_version=99)), r"written by a newer Attribution Explorer"),
        (
            lambda run: next((run / "shards").glob("*.parquet")).write_bytes(b"not parquet"),
            r"Cannot read the shards of",
        ),
        (_rows_with(lambda rows: _set_result_file(rows, "../../../../etc/passwd")), r"points outside the run folder"),
        (_rows_with(lambda rows: _set_result_file(rows, "run.json")), r"run\.json: not an Attribution Explorer result"),
    ],
    ids=[
        "run.json -> /dev/zero",
        "oversize run.json",
        "not JSON",
        "another schema",
        "methods as a string",
        "threshold as a string",
        "method params as a list",
        "model as a list",
        "n_records as a string",
        "newer schema",
        "junk shard",
        "result outside the folder",
        "result that is no result",
    ],
)
def test_hostile_run_folders_for_report_and_export(
    corpus_run: Path, change, expect: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = _tampered(corpus_run, tmp_path, change)
    for command in (["report", str(run)], ["export", str(run)]):
        out = tmp_path / "page.html"
        code, stderr = _run([*command, "--out", str(out)], capfd)
        _assert_one_clear_line(code, stderr, expect)
        assert not out.exists()
    assert main(["report", str(corpus_run), "--out", str(tmp_path / "good.html")]) == 0  # the next good one works


# ------------------------------------------------------------------- values no option or file may hold

CLI = [sys.executable, "-m", "space.cli"]


def _huge_n_records(run: Path) -> None:
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    manifest["data"]["n_records"] = "HUGE-INTEGER"
    (run / "run.json").write_text(json.dumps(manifest).replace('"HUGE-INTEGER"', HUGE_INTEGER), encoding="utf-8")


@pytest.mark.parametrize("command", ["export", "report", "export of a run folder", "corpus --method-params"])
def test_integers_of_5000_digits_are_one_line_in_every_command(
    command: str, corpus_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """JSON integers beyond Python's int-conversion limit: one line (no ValueError traceback), then a good run."""
    out = tmp_path / "page.html"
    if command == "export":
        result = tmp_path / "result.json"
        result.write_text(huge_integer_json(), encoding="utf-8")
        argv, good = ["export", str(result)], ["export", str(_valid_result_file(tmp_path))]
    elif command == "corpus --method-params":
        data = _data_file(tmp_path, "data.jsonl", b'{"source": "the cat sees a bird"}\n')
        params = f'{{"saliency": {{"n_steps": {HUGE_INTEGER}}}}}'
        out = tmp_path / "run"
        argv = [*CORPUS, "--data", str(data), "--method-params", params]
        good = [*CORPUS, "--data", str(data), "--method-params", '{"saliency": {}}']
    else:
        run = _tampered(corpus_run, tmp_path, _huge_n_records)
        argv = [command.split()[0], str(run)]
        good = [command.split()[0], str(corpus_run)]
    code, stderr = _run([*argv, "--out", str(out)], capfd)
    where = "--method-params" if command.startswith("corpus") else r"run\.json|result\.json|result JSON"
    _assert_one_clear_line(code, stderr, rf"({where}).* {HUGE_INTEGER_EXPECT}")
    assert not out.exists()
    assert main([*good, "--out", str(out)]) == 0


def _valid_result_file(tmp_path: Path) -> Path:
    path = tmp_path / "valid.json"
    valid_attribution().to_json(path)
    return path


def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["export", "report", "corpus"])
def test_a_fifo_as_a_file_argument_is_refused_at_once(command: str, corpus_run: Path, tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer forever: every command refuses it (one shared check) instead.

    A real process with a timeout, so a hang fails the test rather than stopping the test run.
    """
    out = tmp_path / ("run-out" if command == "corpus" else "page.html")
    if command == "export":
        argv = ["export", str(_fifo(tmp_path, "result.json")), "--out", str(out)]
    elif command == "report":
        run = _tampered(corpus_run, tmp_path, lambda run: (run / "run.json").unlink())
        os.mkfifo(run / "run.json")
        argv = ["report", str(run), "--out", str(out)]
    else:
        argv = [*CORPUS, "--data", str(_fifo(tmp_path, "data.jsonl")), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run([*CLI, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` waited on a FIFO for 120 s")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert re.search(r"(result|data|run)\.json(l)? is a FIFO \(named pipe\), not a regular file", last), last
    assert not out.exists()


def _refuse_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model (reading its config, the first thing a load reads) fails the test."""
    import attribution.models

    def load(*args, **kwargs):
        raise AssertionError("a model was loaded before every option was checked")

    monkeypatch.setattr(attribution.models, "_load_config", load)


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        ([*CORPUS, "--methods", "graph", "--graph-roots", "junk"], r"graph roots must be 'auto', 'all' or a token"),
        ([*CORPUS, "--methods", "graph", "--graph-threshold", "5"], r"graph threshold must be in \[0, 1\), not 5"),
        ([*CORPUS, "--methods", "magic"], r"Unknown attribution method 'magic'"),
        ([*CORPUS, "--step-scores", "loss"], r"Unknown step score 'loss'"),
        ([*CORPUS, "--method-params", '{"lime": {}}'], r"Parameters given for 'lime', which is not one of"),
        ([*CORPUS, "--device-map", "auto", "--max-memory", "0=lots"], r"--max-memory: 'lots' is not a size"),
        ([*CORPUS, "--revision", "v\udcff"], r"The model revision is not valid text"),
        ([*CORPUS, "--engine", "ray", "--cpus-per-worker", "nan"], r"--cpus-per-worker must be positive"),
        (["attribute", "--text", IOI, "--revision", "v\udcff"], r"The model revision is not valid text"),
        (["attribute", "--text", "a\udcff"], r"The input text is not valid text"),
        (["attribute", "--text", IOI, "--contrast-target", "x"], r"A contrast target needs a target"),
        (["graph", "--text", IOI, "--token", "junk"], r"The root token must be a token index"),
        (["graph", "--text", IOI, "--target", "a\udcff"], r"The target is not valid text"),
        (["intervene", "--text", IOI, "--component", "<x>"], r"Cannot read the component '<x>'"),
        (["intervene", "--text", IOI, "--component", "decoder:1:head:0", "--top-k", "0"], r"top_k must be an"),
        (["intervene", "--text", IOI, "--route", "--seeds", "100000"], r"seeds must be an integer from 0 to 64"),
        (["intervene", "--text", IOI, "--component", "decoder:1:ffn:*", "--reference", "a\udcff"], r"reference is"),
        (["patch", "--text", IOI, "--counterfactual", IOI, "--contrast-token", "a\udcff"], r"contrast token is"),
        (["patch", "--text", IOI, "--counterfactual", IOI, "--no-exact", "--no-approximate"], r"nothing to compute"),
    ],
    ids=lambda value: " ".join(value[:1] + value[-2:]) if isinstance(value, list) else None,
)
def test_every_option_is_checked_before_a_model_loads(
    argv: list[str], expect: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _refuse_model_loads(monkeypatch)
    if argv[0] == "corpus":
        data = _data_file(tmp_path, "data.jsonl", b'{"source": "the cat sees a bird"}\n')
        argv = [*argv, "--data", str(data)]
    else:
        argv = [argv[0], "--model", "tiny-ioi-gpt2", *argv[1:]]
    out = tmp_path / "out"
    code, stderr = _run_catching_exit([*argv, "--out", str(out)], capfd)
    _assert_one_clear_line(code, stderr, expect)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["attribute", "--text", IOI, "--max-new-tokens", HUGE_INTEGER],
        ["graph", "--text", IOI, "--token", HUGE_INTEGER],
        ["intervene", "--text", IOI, "--route", "--seeds", HUGE_INTEGER],
        ["patch", "--text", IOI, "--counterfactual", IOI, "--token", HUGE_INTEGER],
        [*CORPUS, "--limit", HUGE_INTEGER],
        ["report", "run", "--max-details", HUGE_INTEGER],
    ],
    ids=lambda argv: f"{argv[0]} {argv[-2]}",
)
def test_integer_options_of_5000_digits_are_one_short_line(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An integer option beyond Python's int-conversion limit: one line that does not echo all 5,000 digits."""
    _refuse_model_loads(monkeypatch)
    if argv[0] == "corpus":
        argv = [*argv, "--data", str(_data_file(tmp_path, "data.jsonl", b'{"source": "the cat"}\n'))]
    elif argv[0] != "report":
        argv = [argv[0], "--model", "tiny-ioi-gpt2", *argv[1:]]
    code, stderr = _run_catching_exit([*argv, "--out", str(tmp_path / "out")], capfd)
    _assert_one_clear_line(code, stderr, r"whole number|invalid int value|root token must be a token index")
    assert len(stderr.strip().splitlines()[-1]) < 400 or "invalid int value" in stderr  # argparse's own echoes
