"""The package as a user installs it: a wheel in a fresh virtual environment, away from the repository.

Builds the wheel (``pip wheel``, no build isolation: offline), installs it into a new venv that reuses
the already-installed dependencies (``--system-site-packages``, plus the test venv's site-packages
when the tests themselves run in one) but not the checkout, and from an empty directory runs the
console script: ``--version``, ``attribute`` and ``graph`` on both bundled models, ``export``, and
builds the app. An audit hook installed in that venv makes any file opened inside the repository
an error, so a path that still leads back into the checkout (``examples/``, ``space/config.json``…)
fails the test instead of passing by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from attribution.bundled import BUNDLED_MODELS
from tests.support import texts
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

IOI_PROMPT = texts.IOI_PROMPT
SOURCE, TRANSLATION = texts.TRANSLATION_TIRED_FRIEND
#: Not part of a build: VCS data, virtualenvs, build outputs, caches.
NOT_SOURCES = (
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*cache",
    ".gradio",
    "out",
    ".whl",
    ".gl",
)
GUARD = '''"""Installed by tests/project/test_wheel.py: opening any file inside the repository is an error here.

The test virtualenv may live inside the checkout (``.venv``): reading installed dependencies from it is allowed.
"""
import os
import sys

_REPO = os.environ.get("ATTRIBUTION_EXPLORER_FORBIDDEN_ROOT")
_ALLOWED = os.environ.get("ATTRIBUTION_EXPLORER_ALLOWED_ROOT", "")


def _inside(path, root):
    return bool(root) and (path == root or path.startswith(root + os.sep))


def _guard(event, args):
    if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.path.realpath(os.fsdecode(args[0]))
        if _inside(path, _REPO) and not _inside(path, _ALLOWED):
            raise PermissionError(f"reached into the repository: {path}")


if _REPO:
    sys.addaudithook(_guard)
'''
#: Run by the venv's Python in the empty directory: the other commands through ``space.cli.main`` in one process
#: (one torch / Inseq / Gradio import instead of one per command), then the app built offline.
IN_PROCESS = f"""
import json
import attribution, exporters, space
from space.cli import main

statuses = [
    main(["attribute", "--model", "tiny-synth-translate", "--method", "attention", "--text", {SOURCE!r},
          "--out", "mt.json"]),
    main(["graph", "--model", "tiny-ioi-gpt2", "--text", {IOI_PROMPT!r}, "--out", "ioi-graph.json"]),
    main(["graph", "--model", "tiny-synth-translate", "--text", {SOURCE!r}, "--target", {TRANSLATION!r},
          "--out", "mt-graph.json"]),
    main(["export", "ioi-graph.json", "--out", "graph.html"]),
]
from space.gradio_app import build_app
from space.gradio_app.config import SpaceConfig
from space.gradio_app.examples import attribute_examples, compare_examples, graph_examples

demo, ctx = build_app(SpaceConfig.load(), hub_reachable=False)
models = ctx.offer.models
print(json.dumps({{
    "statuses": statuses,
    "files": [attribution.__file__, exporters.__file__, space.__file__],
    "models": list(models),
    "examples": [len(attribute_examples(models)), len(graph_examples(models)), len(compare_examples(models))],
}}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from a copy of the sources, install it in a fresh venv; return paths and env."""
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.fail(
            f"building the wheel needs setuptools>=77 (have {setuptools.__version__}): pip install -r "
            "requirements-test.txt"
        )
    work = tmp_path_factory.mktemp("wheel")
    sources = work / "src"
    shutil.copytree(REPO, sources, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    dist = work / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist)]
    subprocess.run([*build, str(sources)], check=True, capture_output=True, text=True, timeout=300)
    shutil.rmtree(sources)  # the installed package must not find its way back to the build tree either
    (wheel,) = dist.glob("attribution_explorer-*.whl")

    env_dir = work / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    in_venv = sys.prefix != sys.base_prefix
    if in_venv:  # the tests run in a venv: reuse its packages (their folders only: its .pth files are not run)
        outer = dict.fromkeys([*site.getsitepackages(), sysconfig.get_path("purelib")])
        (purelib / "test_venv_packages.pth").write_text("\n".join(outer) + "\n")
    (purelib / "_repo_guard.py").write_text(GUARD)
    (purelib / "_repo_guard.pth").write_text("import _repo_guard\n")

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ATTRIBUTION_EXPLORER_"))}
    environment |= {
        "ATTRIBUTION_EXPLORER_FORBIDDEN_ROOT": str(REPO.resolve()),
        "ATTRIBUTION_EXPLORER_ALLOWED_ROOT": str(Path(sys.prefix).resolve()) if in_venv else "",
        "HF_HUB_OFFLINE": "1",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    # Dependencies resolve against what is installed (--no-index: offline), so missing ones fail here.
    subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-build-isolation", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    cwd = work / "empty"
    cwd.mkdir()
    return {
        "python": python,
        "script": env_dir / "bin" / "attribution-explorer",
        "purelib": purelib,
        "env": environment,
        "cwd": cwd,
        "wheel": wheel,
    }


def run(installed: dict, *command, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        cwd=installed["cwd"],
        env={**installed["env"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_guard_refuses_the_repository(installed):
    """The check below is only worth something if reaching into the checkout really fails in that venv."""
    completed = run(installed, installed["python"], "-c", f"open({str(REPO / 'README.md')!r})")
    assert completed.returncode != 0 and "reached into the repository" in completed.stderr


def test_the_wheel_carries_the_bundled_models_and_samples(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for model in BUNDLED_MODELS:
        assert f"attribution/bundled_data/models/{model}/model.safetensors" in names
        assert f"attribution/bundled_data/models/{model}/tokenizer.json" in names
    assert "attribution/bundled_data/data/samples.json" in names
    assert "space/config.json" in names
    assert not any(name.startswith(("tests/", "examples/", "benchmarks/")) for name in names)
    assert not any(name.endswith(".jsonl") for name in names)  # test sets stay in the repository


def test_version_names_the_installed_distribution(installed):
    completed = run(installed, installed["script"], "--version")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().startswith("attribution-explorer 0.")
    verbose = run(installed, installed["script"], "--version", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert f"installed in {installed['purelib']}" in verbose.stdout
    assert "import name 'attribution': attribution-explorer" in verbose.stdout


def test_the_installed_metadata_declares_the_apps_command(installed):
    """The command line finds ``serve`` in the installed distribution's entry points, not in the app's code."""
    probe = (
        "from importlib import metadata\n"
        "points = metadata.distribution('attribution-explorer').entry_points\n"
        "print(sorted(f'{e.name}={e.value}' for e in points.select(group='attribution_explorer.commands')))"
    )
    declared = run(installed, installed["python"], "-c", probe)
    assert declared.stdout.strip() == "['serve=space.gradio_app.serve']", declared.stderr
    served = run(installed, installed["script"], "serve", "--help")
    assert served.returncode == 0 and served.stdout.startswith("usage: attribution-explorer serve"), served.stderr
    refused = run(installed, installed["script"], "serve", "--port", "0")
    assert refused.returncode == 2 and "must be a port number from 1 to 65535" in refused.stderr


def test_models_dir_override_is_kept(installed, tmp_path):
    probe = "import attribution.bundled as b; print(b.BUNDLED_MODELS_DIR)"
    default = run(installed, installed["python"], "-c", probe)
    assert default.stdout.strip() == str(installed["purelib"] / "attribution" / "bundled_data" / "models")
    override = run(installed, installed["python"], "-c", probe, env={"ATTRIBUTION_EXPLORER_MODELS_DIR": str(tmp_path)})
    assert override.stdout.strip() == str(tmp_path)


def test_commands_run_on_both_bundled_models_from_an_empty_directory(installed):
    """The console script attributes the IOI model while the other commands and the app run beside it."""
    script, cwd = installed["script"], installed["cwd"]
    command = [script, "attribute", "--model", "tiny-ioi-gpt2", "--text", IOI_PROMPT, "--max-new-tokens", "1"]
    attribute_ioi = subprocess.Popen(
        [str(part) for part in [*command, "--out", "ioi.json"]],
        cwd=cwd,
        env=installed["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    others = run(installed, installed["python"], "-c", IN_PROCESS)
    _, stderr = attribute_ioi.communicate(timeout=600)
    assert attribute_ioi.returncode == 0, stderr[-3000:]
    assert others.returncode == 0, others.stderr[-3000:]
    report = json.loads(others.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [0, 0, 0, 0], others.stderr[-3000:]

    ioi, mt = (json.loads((cwd / name).read_text()) for name in ("ioi.json", "mt.json"))
    assert ioi["target_text"] == f"{IOI_PROMPT} Mary"  # the bundled IOI model's answer
    assert mt["target_text"] == TRANSLATION and mt["provenance"]["model_kind"] == "seq2seq"
    for name in ("ioi-graph.json", "mt-graph.json"):
        graph = json.loads((cwd / name).read_text())
        assert graph["schema"] == "contribution-graph" and graph["edges"]
    page = (cwd / "graph.html").read_text(encoding="utf-8")
    assert "Bokeh" in page and "tiny-ioi-gpt2" in page

    assert all(Path(path).is_relative_to(installed["purelib"]) for path in report["files"]), report["files"]
    assert set(BUNDLED_MODELS) <= set(report["models"])
    assert all(count > 0 for count in report["examples"]), report  # samples.json came with the wheel
