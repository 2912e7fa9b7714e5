"""How ``attribution-explorer`` finds its commands: its own, then those of the entry-point group
``attribution_explorer.commands`` (where the app declares ``serve``, and a third party adds one)."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import space.cli
from space.cli import BUILT_IN, ENTRY_POINT_GROUP, EXIT_USER_ERROR, command_entry_points, main
from tests.support.paths import REPO

#: A third party's command module, as its own package would ship it.
HELLO = '''
"""``attribution-explorer hello``: a third party's command."""

def add_parser(subparsers):
    parser = subparsers.add_parser("hello", help="say hello")
    parser.add_argument("--name", required=True)
    parser.set_defaults(handler=run)
    return parser


def run(args):
    if args.name == "nobody":
        from attribution.errors import InvalidInputError

        raise InvalidInputError("nobody is there")
    print(f"hello {args.name}")
    return 0
'''


def _declare(monkeypatch: pytest.MonkeyPatch, **commands: str) -> None:
    """Declare ``commands`` (name → entry-point value) in the group, as installed distributions would."""
    declared = [metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in commands.items()]
    real = metadata.entry_points

    def entry_points(**select):
        return declared if select.get("group") == ENTRY_POINT_GROUP else real(**select)

    monkeypatch.setattr(space.cli.metadata, "entry_points", entry_points)


@pytest.fixture
def hello_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "third_party_hello.py").write_text(textwrap.dedent(HELLO), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "third_party_hello", raising=False)
    return "third_party_hello"


def test_the_pyproject_declares_what_a_source_checkout_falls_back_to() -> None:
    """An installed package reads ``serve`` from its metadata, a checkout from the fallback: the same value."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert declared == {"serve": "space.gradio_app.serve"} == space.cli._DECLARED_HERE
    assert list(command_entry_points()) == [*BUILT_IN, "serve"]


def test_a_declared_command_is_listed_after_ours_and_runs(monkeypatch, capsys, hello_module) -> None:
    _declare(monkeypatch, hello=hello_module)
    assert list(command_entry_points()) == [*BUILT_IN, "serve", "hello"]
    assert main(["hello", "--name", "Ada"]) == 0
    assert capsys.readouterr().out == "hello Ada\n"
    assert main(["hello", "--name", "nobody"]) == EXIT_USER_ERROR  # its user errors read like ours
    assert capsys.readouterr().err == "error: nobody is there\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "say hello" in capsys.readouterr().out


def test_a_declared_command_cannot_take_a_built_in_name(monkeypatch, capsys, hello_module) -> None:
    _declare(monkeypatch, attribute=hello_module)
    assert command_entry_points()["attribute"].value == "space.cli.commands.attribute"
    assert main(["attribute", "--model", "m", "--text", "t", "--out", "o.json", "--method", "grad_cam"]) == 2
    assert "Unknown attribution method 'grad_cam'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("no_such_module_for_attribution_explorer", "No module named 'no_such_module_for_attribution_explorer'"),
        ("json", "it has no add_parser(subparsers)"),
    ],
)
def test_a_broken_declared_command_is_one_warning_and_the_rest_works(monkeypatch, capsys, value, reason) -> None:
    _declare(monkeypatch, broken=value)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    captured = capsys.readouterr()
    assert captured.err == f"warning: command 'broken' ({value}) could not be loaded: {reason}\n"
    assert "serve" in captured.out and "broken" not in captured.out
