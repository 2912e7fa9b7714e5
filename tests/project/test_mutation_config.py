"""mutation/run.py (the documented mutation-testing run): its targets must name files and tests that exist,
and the mutmut configuration it writes must read back as mutmut reads it, so the run does not rot as the
code moves. The run itself (hours of CPU) is not part of the suite."""

from __future__ import annotations

import importlib.util
import json
import sys
from configparser import ConfigParser

from tests.support.paths import REPO as ROOT


def _runner():
    spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "mutation" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_targets_name_existing_sources_and_tests():
    runner = _runner()
    assert {"compare", "inseq_runner", "escaping", "contributions"} <= set(runner.TARGETS)
    for name, target in runner.TARGETS.items():
        for pattern in target.files:
            matches = list(ROOT.glob(pattern))
            assert matches, (name, pattern)
            assert all(path.relative_to(ROOT).parts[0] in runner.SOURCE_PATHS for path in matches), (name, pattern)
        for test in target.tests:
            assert (ROOT / test).is_file(), (name, test)


def test_the_written_config_reads_back_as_mutmut_reads_it():
    runner = _runner()
    target = runner.TARGETS["escaping"]
    parser = ConfigParser()
    parser.read_string(runner._setup_cfg(target))

    def values(key: str) -> list[str]:  # mutmut's setup.cfg reader: one value per non-empty line
        return [line for line in parser.get("mutmut", key).split("\n") if line]

    assert values("only_mutate") == list(target.files)
    assert values("source_paths") == list(runner.SOURCE_PATHS)
    assert values("pytest_add_cli_args_test_selection") == list(target.tests)
    assert values("pytest_add_cli_args") == [
        "-p",
        "no:cacheprovider",
        "-m",
        "not browser and not hub and not slow",
        *target.pytest_args,
    ]
    assert parser.get("mutmut", "use_git_change_detection") == "false"


def test_a_resumed_run_names_only_the_selected_mutants_without_a_result(tmp_path):
    """mutmut runs again every mutant it is given by name: resuming must not repeat the finished ones."""
    runner = _runner()
    meta = tmp_path / "mutants" / "attribution" / "compare.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": None, "m.x_f__mutmut_3": 0, "m.x_g__mutmut_1": None}
    meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")
    target = runner.Target(files=("attribution/compare.py",), tests=(), mutants=("m.x_f__*",))
    assert runner.not_run(tmp_path, target) == ("m.x_f__mutmut_2",)
    assert runner.not_run(tmp_path, runner.Target(files=(), tests=())) == ("m.x_f__mutmut_2", "m.x_g__mutmut_1")
