"""The command line's surface: help, version, start-up imports, argument errors, and the code's homes.

Start-up speed is measured in ``benchmarks/startup.py``; here we assert what makes it fast: which
modules a command imports before it answers (read from ``python -X importtime``).
"""

from __future__ import annotations

import argparse
import json
import os
import pkgutil
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import metadata

import pytest

import attribution
from attribution.capabilities import METHODS, STEP_SCORES, TESTED_FAMILIES, refusal_reason
from attribution.contributions.roots import parse_root_tokens
from attribution.errors import InvalidInputError
from space.cli import EXIT_INSTALL_ERROR, EXIT_USER_ERROR, build_parser, main
from space.gradio_app.serve import serve_address
from space.gradio_app.tabs import graph as graph_tab
from tests.support.paths import REPO

#: Top-level modules whose import takes seconds; no --help, --version or argument error may wait for them.
HEAVY = frozenset({"torch", "transformers", "inseq", "captum", "gradio", "bokeh", "huggingface_hub", "tokenizers"})


def imported_modules(command: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set]:
    """Run ``python -X importtime COMMAND...`` from the repository; return it and the modules it imported."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip() for line in completed.stderr.splitlines() if line.startswith("import time:")
    }
    return completed, modules - {"[cumulative]"}


def heavy(modules: set[str]) -> set[str]:
    return {name for name in modules if name.partition(".")[0] in HEAVY}


CLI = ["-m", "space.cli"]


def commands() -> list[str]:
    """Every registered sub-command (so a new one is covered without editing this file)."""
    parser = build_parser()
    return list(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


@pytest.mark.parametrize(
    "command",
    [
        [*CLI, "--help"],
        *([*CLI, name, "--help"] for name in commands()),
        [*CLI, "--version", "--verbose"],
        ["space/app.py", "--help"],
    ],
    ids=lambda command: " ".join(command[2:] if command[0] == "-m" else command),
)
def test_help_and_version_answer_without_heavy_imports(command):
    completed, modules = imported_modules(command)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip()
    assert not heavy(modules), f"{' '.join(command)} imported {sorted(heavy(modules))[:5]}"
    assert "space.cli" in modules or "space" in modules  # the probe sees our own imports


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["attribute", "--method", "grad_cam"],
            "error: Unknown attribution method 'grad_cam'; choose one of: saliency",
        ),
        (["attribute", "--step-scores", "bogus"], "error: Unknown step score 'bogus'"),
        (["attribute", "--step-scores", "contrast_prob"], "error: The step score 'contrast_prob' compares with"),
        (["attribute", "--contrast-target", "x"], "error: A contrast target needs a target"),
        (["graph", "--token", "two"], "error: The root token must be a token index"),
        (["graph", "--threshold", "1.5"], "error: --threshold must be in [0, 1)"),
    ],
)
def test_argument_errors_come_before_any_heavy_import(tmp_path, arguments, message):
    command, *options = arguments
    out = tmp_path / "never.json"
    model_options = ["--model", "tiny-ioi-gpt2", "--text", "When Mary and John went", "--out", str(out)]
    completed, modules = imported_modules([*CLI, command, *model_options, *options])
    assert completed.returncode == EXIT_USER_ERROR
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), completed.stderr[-1500:]
    assert not heavy(modules), sorted(heavy(modules))[:5]
    assert not out.exists()


@pytest.mark.parametrize(
    ("arguments", "env", "message"),
    [
        (["--port", "0"], {}, "argument --port: must be a port number from 1 to 65535, not '0'"),
        (["--port", "http"], {}, "argument --port: must be a port number"),
        ([], {"GRADIO_SERVER_PORT": "eighty"}, "error: GRADIO_SERVER_PORT must be a port number"),
    ],
)
def test_serve_rejects_a_bad_address_before_importing_gradio(arguments, env, message):
    completed, modules = imported_modules([*CLI, "serve", *arguments], env=env)
    assert completed.returncode == EXIT_USER_ERROR
    assert message in completed.stderr
    assert not heavy(modules)


def test_serve_address_options_override_the_spaces_variables(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    parser = build_parser()
    assert serve_address(parser.parse_args(["serve"])) == ("127.0.0.1", 7860)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert serve_address(parser.parse_args(["serve"])) == ("0.0.0.0", 7861)
    args = parser.parse_args(["serve", "--host", "::1", "--port", "8080", "--config", "op.json"])
    assert serve_address(args) == ("::1", 8080) and str(args.config) == "op.json"


def test_attribute_help_lists_the_methods_that_run_and_every_step_score(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["attribute", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    methods = text.split("methods (--method")[1].split("step scores")[0].splitlines()[1:]
    listed = [line.split()[0] for line in methods if line.strip()]
    runs_somewhere = [
        name
        for name in METHODS
        if any(refusal_reason(name, kind, family) is None for family, kind in TESTED_FAMILIES.items())
    ]
    assert listed == runs_somewhere and "reagent" not in listed  # refused on every architecture offline
    assert text.rstrip().splitlines()[-1].split() == list(STEP_SCORES)


def test_version_names_the_distribution_and_the_libraries(capsys):
    version = attribution.__version__
    assert metadata.version("attribution-explorer") == version  # the metadata reads it from the package
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"attribution-explorer {version}"
    assert main(["--version", "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"attribution-explorer {version}"
    for library in ("torch", "transformers", "inseq", "gradio", "bokeh"):
        assert f"{library} {metadata.version(library)}" in lines
    assert "import name 'attribution': attribution-explorer" in "\n".join(lines)


def test_no_command_prints_the_commands_and_fails(capsys):
    assert main([]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    for command in ("attribute", "graph", "export", "serve"):
        assert command in err


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("-1", -1), (" 3 ", 3), ("0,3,-1", [0, 3, -1]), ("all", "all"), (None, -1), ("", -1), (2, 2)],
)
def test_one_root_token_parser(value, parsed):
    assert parse_root_tokens(value) == parsed


def test_the_app_and_the_cli_parse_root_tokens_alike(capsys):
    """The app's graph handler and the CLI refuse the same value with the same message."""
    with pytest.raises(InvalidInputError) as error:
        parse_root_tokens("last")
    assert graph_tab.parse_root_tokens is parse_root_tokens
    assert main(["graph", "--model", "m", "--text", "t", "--out", "o.json", "--token", "last"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err.strip() == f"error: {error.value}"


def _modules_of(package: str) -> list[str]:
    return [package] + [
        info.name
        for info in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}.")
        if "._" not in info.name
    ]


@pytest.mark.slow
def test_the_library_imports_neither_the_app_nor_the_exporters():
    """``attribution`` sits under ``exporters`` and ``space``: importing all of it must not pull them in."""
    modules = _modules_of("attribution")
    assert "attribution.inseq_runner" in modules and "attribution.contributions.graph" in modules
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in {'space', 'exporters', 'gradio', 'bokeh'}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_the_exporters_never_import_torch():
    """Exporters read result objects only: drawing a saved JSON must not load torch or transformers."""
    modules = _modules_of("exporters")
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in {'torch', 'transformers', 'inseq', 'space'}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_export_imports_no_model_library(tmp_path):
    """Drawing a saved result needs Bokeh, not torch, transformers, Inseq or Gradio."""
    from tests.support.synthetic_results import synthetic_attribution

    saved = tmp_path / "result.json"
    synthetic_attribution("seq2seq", n_source=4, n_generated=3, seed=0).to_json(saved)
    completed, modules = imported_modules([*CLI, "export", str(saved), "--out", str(tmp_path / "page.html")])
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "page.html").is_file()
    assert "bokeh" in modules
    assert not {"torch", "transformers", "inseq", "gradio"} & {name.partition(".")[0] for name in modules}


@pytest.mark.slow
def test_graph_imports_neither_inseq_nor_the_app(tmp_path):
    out = tmp_path / "graph.json"
    arguments = [
        "graph",
        "--model",
        "tiny-ioi-gpt2",
        "--text",
        "When Mary and John went to the store",
        "--out",
        str(out),
    ]
    completed, modules = imported_modules([*CLI, *arguments], env={"HF_HUB_OFFLINE": "1"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert out.is_file() and "torch" in modules
    assert not {"inseq", "captum", "gradio", "bokeh"} & {name.partition(".")[0] for name in modules}


@pytest.mark.slow
def test_attribute_imports_neither_the_app_nor_bokeh(tmp_path):
    out = tmp_path / "result.json"
    arguments = ["attribute", "--model", "tiny-ioi-gpt2", "--text", "When Mary and John went to the store"]
    completed, modules = imported_modules(
        [*CLI, *arguments, "--max-new-tokens", "1", "--out", str(out)], env={"HF_HUB_OFFLINE": "1"}
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert out.is_file() and "inseq" in modules
    assert not {"gradio", "bokeh", "space.app", "space.gradio_app", "exporters.bokeh_html"} & modules


def test_a_shadowed_package_is_reported_with_our_distribution_and_the_other_one(monkeypatch, capsys):
    """PyPI's `attribution` installed over ours: the import error names both distributions and the fix."""
    from space import distribution

    providers = {"attribution": ["attribution-explorer", "attribution"], "exporters": [], "space": []}
    monkeypatch.setattr(distribution.metadata, "packages_distributions", lambda: providers)
    monkeypatch.setattr(
        distribution,
        "installed_version",
        lambda name=distribution.DISTRIBUTION: {"attribution": "1.8.0"}.get(name, "0.1.0"),
    )
    monkeypatch.setitem(sys.modules, "attribution.capabilities", None)  # importing it now fails
    assert main(["attribute", "--help"]) == EXIT_INSTALL_ERROR
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: attribution-explorer cannot import 'attribution.capabilities'")
    assert "also provided by attribution 1.8.0" in error
    assert "pip install --force-reinstall --no-deps attribution-explorer" in error
    assert distribution.import_problem(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None


@pytest.mark.slow
def test_serve_takes_host_port_and_config(tmp_path):
    """``serve --host --port --config`` (once 'unrecognized arguments') serves the app with that config."""
    shipped = json.loads((REPO / "space" / "config.json").read_text(encoding="utf-8"))
    config = {key: value for key, value in shipped.items() if key not in ("profile", "profiles")}  # no profile wins
    config |= {"methods": ["attention", "occlusion"], "default_method": "occlusion"}
    path = tmp_path / "operator.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": "1"}  # the option wins over the variable
    server = subprocess.Popen([sys.executable, *command], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, served = time.monotonic() + 300, None
        while served is None and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                    served = json.load(response)
            except OSError:
                time.sleep(0.2)
        assert served is not None, "the app did not answer within 300 s"
        (method,) = [c["props"] for c in served["components"] if c.get("props", {}).get("label") == "Method"]
        assert method["value"] == "occlusion"
        assert [choice[1] for choice in method["choices"]] == ["attention", "occlusion"]
    finally:
        server.terminate()
        server.wait(timeout=60)
