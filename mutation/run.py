"""Mutation testing of the core with mutmut: plant small bugs, check the fast tests notice each one.

Not part of CI (a full run takes hours on 2 cores); run it after changing a module below or its tests,
then kill each surviving mutant with a test or record in ``mutation/EQUIVALENT.md`` why it cannot be
killed. Each target is run in its own scratch copy of the working tree (``--workdir``, default
``/tmp/attribution-explorer-mutation``), with a mutmut configuration naming the files to mutate and the
fast tests that guard them, so the repository never holds mutmut's ``mutants/`` folder.

    pip install mutmut==3.8.1                       # a development tool only, not in requirements*.txt
    nice -n 10 python mutation/run.py compare       # one target at a time; see TARGETS
    python mutation/run.py --report compare         # scores and surviving mutants of the last run
    nice -n 10 python mutation/run.py --resume inseq_runner   # continue an interrupted run
    python mutation/run.py compare --mutants 'attribution.compare.x_aer__mutmut_*'   # some mutants only

For every target it prints, per file, the number of mutants, how many the tests killed (a timeout
counts as killed: the mutant made a test hang), survived, had no test running their code, and the
mutation score ``killed / (killed + survived + no tests)``; the diffs of the surviving mutants are
written to ``WORKDIR/TARGET/survivors.diff``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT_VERSION = "3.8.1"


@dataclass(frozen=True)
class Target:
    """Files to mutate, the mutants to run (mutmut name globs), and the fast tests that guard them."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    mutants: tuple[str, ...] = ()  # default: every mutant of ``files``
    pytest_args: tuple[str, ...] = ()


#: What each target mutates and which tests must catch it. Browser, Hub and slow tests are never run.
TARGETS: dict[str, Target] = {
    "compare": Target(files=("attribution/compare.py",), tests=("tests/attribution/test_compare.py",)),
    "inseq_runner": Target(
        files=("attribution/inseq_runner.py",),
        tests=(
            "tests/attribution/test_inseq_runner.py",
            "tests/attribution/test_capabilities.py",
            "tests/attribution/test_corpus_batching.py",
            "tests/attribution/test_languages.py",
            "tests/attribution/test_budget.py",
        ),
        # the capability table's cells on one family of each kind and T5 (value_zeroing), not all ten families;
        # not the batched discretized / sequential integrated gradients (17 of the 44 s every surviving mutant
        # costs): their cells run them one by one
        pytest_args=(
            "-k",
            "(not test_capability_cell and not test_refusals or gpt2 or marian or t5)"
            " and not (batch_gives_each_input and (discretized or sequential_integrated))",
        ),
    ),
    "escaping": Target(
        files=("exporters/page.py", "exporters/embed.py", "exporters/compare_view.py", "exporters/hub.py"),
        tests=("tests/exporters/test_export.py",),
        pytest_args=("-k", "escaped or provenance or modes or comparison or cli or hub_card or quotes or are_exact"),
        # the functions that put user strings into HTML (and the Hub card's Markdown), not the whole files
        mutants=(
            "exporters.page.x_provenance_html__*",
            "exporters.page.x_provenance_json_script__*",
            "exporters.page.x_provenance_meta_tags__*",
            "exporters.page.x_render_snippet__*",
            "exporters.page.x_render_iframe__*",
            "exporters.embed.x_json_script__*",
            "exporters.embed.x_iframe_embed__*",
            "exporters.compare_view.x_agreement_table_html__*",
            "exporters.compare_view.x_comparison_figure__*",
            "exporters.hub.x_readme_for__*",
        ),
    ),
    "contributions": Target(
        files=("attribution/contributions/*.py", "attribution/anatomy/*.py"),
        tests=(
            "tests/attribution/contributions/test_contributions.py",
            "tests/attribution/anatomy/test_anatomy.py",
            "tests/attribution/contributions/test_contributions_examples.py",
            "tests/attribution/contributions/test_contributions_batch.py",
            "tests/attribution/test_languages.py",
            # accelerate-offloaded models: the weights loaded around the reads
            "tests/attribution/test_corpus_sharding.py",
        ),
        # every family for the exact reconstruction, the adapter checks and the graph (its logit lens reads
        # each family's final norm, output scale and logit bias): together they cover each family's own
        # description; the loop reference and the routes on one family of each code path only: pre-LN
        # (gpt2, llama: grouped-query), branch norms (gemma2), fused QKV (gpt_neox, falcon, bloom), parallel
        # residual (gpt_neox, falcon), post-LN (opt-post-ln, marian), encoder-decoder (marian, t5)
        pytest_args=(
            "-k",
            "not (loop_reference or reference_walk or neuron_scores_read) or [gpt2 or [llama"
            " or [gemma2 or [gpt_neox or [falcon] or [falcon- or [bloom or [opt-post-ln or [marian or [t5",
        ),
    ),
}
#: The packages mutmut copies into its scratch tree and imports from there (only ``Target.files`` are mutated).
SOURCE_PATHS = ("attribution", "exporters")
#: Also copied there: imported by the tests, or read by them (the bundled models, the README and the docs pages).
ALSO_COPY = ("space", "examples", "benchmarks", "README.md", "docs", "mkdocs.yml")
#: Exit codes of mutmut's meta files (``mutmut.stats.status_by_exit_code``), grouped for the score.
KILLED = {1: "killed", 3: "killed", 24: "timeout", -24: "timeout", 36: "timeout", 152: "timeout", 255: "timeout"}
SURVIVED = {0: "survived"}
NO_TESTS = {5: "no tests", 33: "no tests"}


def _setup_cfg(target: Target) -> str:
    def block(name: str, values: tuple[str, ...] | list[str]) -> str:
        return f"{name} =\n" + "".join(f"    {value}\n" for value in values)

    pytest_args = ["-p", "no:cacheprovider", "-m", "not browser and not hub and not slow", *target.pytest_args]
    return (
        "[mutmut]\n"
        + block("source_paths", SOURCE_PATHS)
        + block("only_mutate", target.files)
        + block("also_copy", ALSO_COPY)
        + block("pytest_add_cli_args_test_selection", target.tests)
        + block("pytest_add_cli_args", pytest_args)
        + "use_git_change_detection = false\n"
    )


def prepare(name: str, target: Target, workdir: Path) -> Path:
    """A fresh copy of the working tree (tracked and untracked, not ignored files) with the target's config."""
    folder = workdir / name
    if folder.exists():
        shutil.rmtree(folder)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for relative in filter(None, files.split("\0")):
        source = ROOT / relative
        if source.is_file():
            destination = folder / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    (folder / "setup.cfg").write_text(_setup_cfg(target), encoding="utf-8")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    (folder / "MEASURED_AT").write_text(commit.stdout.strip() + "\n", encoding="utf-8")
    return folder


def run(folder: Path, target: Target, max_children: int) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    command = [str(mutmut), "run", "--max-children", str(max_children), *target.mutants]
    return subprocess.run(command, cwd=folder, env=env).returncode


def not_run(folder: Path, target: Target) -> tuple[str, ...]:
    """The target's mutants that have no result yet in ``folder``: mutmut runs every mutant it is given by
    name again, so a resumed run names only these."""
    names = []
    for meta in sorted((folder / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        names += [key for key, code in codes.items() if code is None and _selected(key, target.mutants)]
    return tuple(names)


def _selected(name: str, globs: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return not globs or any(fnmatch(name, pattern) for pattern in globs)


def report(name: str, target: Target, folder: Path) -> dict[str, Counter]:
    """Per-file counts from mutmut's meta files; writes the surviving mutants' diffs beside them."""
    counts: dict[str, Counter] = {}
    survivors: list[str] = []
    for meta in sorted((folder / "mutants").rglob("*.py.meta")):
        source = str(meta.relative_to(folder / "mutants"))[: -len(".meta")]
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        selected = {key: code for key, code in codes.items() if _selected(key, target.mutants)}
        if not selected:
            continue
        tally = Counter()
        for key, code in selected.items():
            if code in KILLED:
                tally["killed"] += 1
            elif code in SURVIVED:
                tally["survived"] += 1
                survivors.append(key)
            elif code in NO_TESTS:
                tally["no tests"] += 1
                survivors.append(key)
            else:
                tally["not run" if code is None else f"other ({code})"] += 1
        counts[source] = tally
    mutmut = Path(sys.executable).with_name("mutmut")
    with open(folder / "survivors.diff", "w", encoding="utf-8") as out:
        for key in survivors:
            shown = subprocess.run([str(mutmut), "show", key], cwd=folder, capture_output=True, text=True)
            out.write(f"# {key}\n{shown.stdout}\n")
    measured_at = (folder / "MEASURED_AT").read_text(encoding="utf-8").strip()
    print(f"\n{name} (measured at {measured_at}; survivors: {folder / 'survivors.diff'})")
    print("| file | mutants | killed | survived | no tests | score |")
    print("|---|---:|---:|---:|---:|---:|")
    for source, tally in counts.items():
        checked = tally["killed"] + tally["survived"] + tally["no tests"]
        score = f"{tally['killed'] / checked:.1%}" if checked else "—"
        total = sum(tally.values())
        print(f"| `{source}` | {total} | {tally['killed']} | {tally['survived']} | {tally['no tests']} | {score} |")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", choices=sorted(TARGETS), help="what to mutate (one at a time)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/attribution-explorer-mutation"))
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested in parallel (default 1)")
    parser.add_argument("--report", action="store_true", help="only print the results of the last run")
    parser.add_argument(
        "--mutants", nargs="+", default=(), help="only these mutant names or globs (e.g. the survivors of a last run)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in its scratch copy (same code and tests)"
    )
    args = parser.parse_args(argv)
    try:
        from importlib.metadata import version

        found = version("mutmut")
    except Exception:
        found = None
    if found != MUTMUT_VERSION:
        print(f"needs mutmut {MUTMUT_VERSION} (found {found}): pip install mutmut=={MUTMUT_VERSION}", file=sys.stderr)
        return 2
    for name in args.targets:
        target = TARGETS[name]
        if args.mutants:
            target = replace(target, mutants=tuple(args.mutants))
        folder = args.workdir / name
        if not args.report:
            resuming = args.resume and (folder / "mutants").is_dir()
            if not resuming:
                folder = prepare(name, target, args.workdir)
            # named mutants would all run again: a resumed run names those without a result (none: nothing to run)
            to_run = replace(target, mutants=not_run(folder, target)) if resuming and target.mutants else target
            code = run(folder, to_run, args.max_children) if to_run.mutants or not target.mutants else 0
            if code != 0:
                print(f"mutmut failed on {name} (exit status {code}); see its output above", file=sys.stderr)
                return code
        report(name, target, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
