"""``attribution-explorer compare``, and what ``intervene``, ``patch`` and a contrastive ``attribute`` print.

Ground truth: the library called directly on the same bundled models (the model's own greedy output, each
result's AER computed by :func:`attribution.compare.alignment_error_rate`, the intervention and patching JSON
the command wrote).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from attribution.compare import alignment_error_rate, compare
from attribution.inseq_runner import attribute, generate_target
from attribution.interventions.results import InterventionResult, PatchingResult
from attribution.models import load_model
from attribution.results import Comparison
from exporters.tokens import display_token, result_style
from space.cli import EXIT_USER_ERROR, main
from tests.support.paths import REPO

SOURCE = "the tired friend greets this woman today"
GOLD = "0-0 1-2 2-1 3-6 4-3 5-4 6-5"
IOI = "When Mary and John went to the store, John gave a drink to"
COUNTERFACTUAL = "When Mary and John went to the store, Mary gave a drink to"


def test_compare_writes_the_comparison_the_library_makes_and_prints_its_numbers(tmp_path, capsys) -> None:
    out = tmp_path / "compare.json"
    arguments = ["compare", "--model", "tiny-synth-translate", "--text", SOURCE, "--gold-alignment", GOLD]
    assert main([*arguments, "--method", "saliency", "--method", "attention", "--out", str(out)]) == 0
    comparison = Comparison.from_file(out)
    loaded = load_model("tiny-synth-translate")
    translation = generate_target(loaded, SOURCE)
    assert comparison.labels == ["saliency", "attention"]
    assert [r.target_text for r in comparison.results] == [translation, translation]  # one target for both
    expected = compare(
        [attribute(loaded, SOURCE, method=m, target=translation, step_scores=()) for m in ("saliency", "attention")],
        ["saliency", "attention"],
        gold_alignment=GOLD,
    )
    assert comparison.aer == pytest.approx(expected.aer)
    assert comparison.aer == pytest.approx([alignment_error_rate(r, GOLD) for r in comparison.results])
    for row, expected_row in zip(comparison.rank_correlation, expected.rank_correlation, strict=True):
        assert row == pytest.approx(expected_row)
    printed = capsys.readouterr().out
    assert f"saliency   {comparison.aer[0]:.3f}" in printed and f"attention  {comparison.aer[1]:.3f}" in printed
    assert f"{comparison.rank_correlation[0][1]:.3f}" in printed
    html = tmp_path / "compare.html"
    assert main(["export", str(out), "--out", str(html)]) == 0 and "saliency" in html.read_text(encoding="utf-8")


def test_compare_refuses_a_bad_gold_alignment_before_loading_a_model(tmp_path, capsys, monkeypatch) -> None:
    import attribution.models

    def no_model(*args, **kwargs):
        raise AssertionError("a model loaded before the options were checked")

    monkeypatch.setattr(attribution.models, "load_model", no_model)
    common = ["compare", "--model", "tiny-synth-translate", "--text", SOURCE, "--out", str(tmp_path / "x.json")]
    assert main([*common, "--method", "saliency", "--method", "attention", "--gold-alignment", "0:0"]) == (
        EXIT_USER_ERROR
    )
    assert "Bad alignment link '0:0'" in capsys.readouterr().err
    assert main([*common, "--method", "saliency"]) == EXIT_USER_ERROR
    assert "compare needs at least two runs" in capsys.readouterr().err


def test_compare_refuses_gold_links_past_the_translation_before_attributing(tmp_path, capsys, monkeypatch) -> None:
    import attribution.inseq_runner

    def no_run(*args, **kwargs):
        raise AssertionError("an attribution ran before the gold alignment was checked")

    monkeypatch.setattr(attribution.inseq_runner, "attribute", no_run)
    arguments = ["compare", "--model", "tiny-synth-translate", "--text", SOURCE, "--gold-alignment", "0-9"]
    code = main([*arguments, "--method", "saliency", "--method", "attention", "--out", str(tmp_path / "x.json")])
    assert code == EXIT_USER_ERROR
    assert "links source word 0 to target word 9, but the result has 7 source and 7 target words" in (
        capsys.readouterr().err
    )


def test_intervene_prints_the_prediction_before_and_after(tmp_path, capsys) -> None:
    out = tmp_path / "ablate.json"
    arguments = ["intervene", "--model", "tiny-ioi-gpt2", "--text", IOI, "--component", "decoder:1:head:1"]
    assert main([*arguments, "--contrast-token", " John", "--out", str(out)]) == 0
    result = InterventionResult.from_file(out)
    change, style = result.predictions[0], result_style(result)
    to, mary, john = (display_token(t, style) for t in (change.input_token, change.target_token, change.contrast_token))
    assert (to, mary, john) == ("to", "Mary", "John")  # as text (this word-level tokenizer marks no spaces)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "zero of decoder:1:head:1:"
    before, after = change.probability_before, change.probability_after
    assert (
        printed[1] == f"position {change.position} ({to}): P({mary}) {before:.3f} → {after:.3f} ({after - before:+.3f})"
    )
    diff_before, diff_after = change.logit_diff_before, change.logit_diff_after
    assert printed[2] == (
        f"  logit({mary}) − logit({john}): {diff_before:.3f} → {diff_after:.3f} ({diff_after - diff_before:+.3f})"
    )
    assert printed[4].startswith(f"  top before: {display_token(change.top_before[0][0], style)} ")


def test_patch_prints_both_logit_differences_and_each_maps_strongest_cells(tmp_path, capsys) -> None:
    out = tmp_path / "patching.json"
    arguments = ["patch", "--model", "tiny-ioi-gpt2", "--text", IOI, "--counterfactual", COUNTERFACTUAL]
    assert main([*arguments, "--maps", "head", "--out", str(out)]) == 0
    result = PatchingResult.from_file(out)
    mary, john = (display_token(t, result_style(result)) for t in (result.target_token, result.contrast_token))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(
        f"logit({mary}) − logit({john}) at position {result.root_position}: clean {result.logit_diff_clean:.3f}, "
        f"counterfactual {result.logit_diff_counterfactual:.3f}"
    )
    head = result.map("head")
    block, index = divmod(int(abs(head.exact).argmax()), head.exact.shape[1])
    strongest = f"{head.row_label} {head.row_names[block]} × {head.column_label} {head.column_names[index]}"
    assert printed[1].startswith(f"  head map (exact), strongest: {strongest} {head.exact[block, index]:+.3f}")
    assert f"Spearman {head.spearman:.3f}" in printed[1]


@pytest.mark.slow
def test_a_contrastive_attribution_prints_no_inseq_warning(tmp_path) -> None:
    out = tmp_path / "contrast.json"
    command = [sys.executable, "-m", "space.cli", "attribute", "--model", "tiny-ioi-gpt2", "--text", IOI]
    command += ["--target", " Mary", "--contrast-target", " John", "--out", str(out)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "contrast_force_inputs" not in completed.stderr and "Warning" not in completed.stderr, completed.stderr
    assert out.is_file()
