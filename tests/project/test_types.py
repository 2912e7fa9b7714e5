"""The type check CI runs: mypy over ``attribution/`` with the settings in ``pyproject.toml``, and the policy for
``# type: ignore`` comments (docs/development.md, "Type checking").

Here so that the README's test command catches a type regression too, not only ``.ci/run``'s own step.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import REPO

#: ``# type: ignore[code, ...]``: an ignore always names the error codes it silences.
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[a-z-]+(?:,\s*[a-z-]+)*\])?(?P<after>.*)$")


def mypy_settings() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]


def unexplained_ignores(path: Path, root: Path = REPO) -> list[str]:
    """``file:line`` (from ``root``) of each ignore in ``path`` without error codes, or without a reason (a comment
    after it on its line, or a comment line right above it)."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        match = IGNORE.search(line)
        if match is None:
            continue
        reason_after = match["after"].strip().startswith("#")
        reason_above = number > 1 and lines[number - 2].strip().startswith("#")
        if not match["codes"] or not (reason_after or reason_above):
            found.append(f"{path.relative_to(root)}:{number}")
    return found


def test_the_ignore_policy_check_finds_bare_and_unexplained_ignores(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "a = f()  # type: ignore\n"
        "b = f()  # type: ignore[arg-type]\n"
        "c = f()  # type: ignore[arg-type]  # a reason\n"
        "# a reason above\n"
        "d = f()  # type: ignore[arg-type, union-attr]\n",
        encoding="utf-8",
    )
    assert unexplained_ignores(planted, tmp_path) == ["planted.py:1", "planted.py:2"]


def test_every_type_ignore_names_its_codes_and_why() -> None:
    offenders = [where for path in sorted((REPO / "attribution").rglob("*.py")) for where in unexplained_ignores(path)]
    assert offenders == []


def test_mypy_settings_check_the_whole_library() -> None:
    """The configuration itself stays honest: all of ``attribution/``, untyped bodies checked, unused ignores
    reported, and missing imports ignored only per named third-party module."""
    settings = mypy_settings()
    assert settings["files"] == ["attribution"]
    assert settings["python_version"] == "3.11"
    assert settings["check_untyped_defs"] is True
    assert settings["warn_unused_ignores"] is True
    assert "ignore_missing_imports" not in settings
    for override in settings.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not any(module.startswith("attribution") for module in modules), override


@pytest.mark.slow
def test_attribution_type_checks() -> None:
    """``mypy`` (what CI runs) reports no error; a first run without mypy's cache takes about a minute of CPU."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
