"""``intervene --sae``: SAE feature ablation and steering from the command line, as the library computes them."""

from __future__ import annotations

from pathlib import Path

from attribution.features import load_sae_folder
from attribution.interventions.ablation import intervene
from attribution.models import bundled_model_path, load_model
from attribution.results import load_result_file
from space.cli import main
from tests.support import texts

SAE = bundled_model_path("tiny-ioi-gpt2").parent / "tiny-ioi-gpt2-sae"


def test_intervene_steers_an_sae_feature_as_the_library_does(tmp_path: Path):
    out = tmp_path / "steer.json"
    component = "decoder:2:sae:215@-1"
    arguments = ["--model", "tiny-ioi-gpt2", "--text", texts.IOI_PROMPT, "--component", component]
    assert (
        main(["intervene", *arguments, "--sae", str(SAE), "--mode", "steer", "--strength", "10", "--out", str(out)])
        == 0
    )
    written = load_result_file(out)
    expected = intervene(
        load_model("tiny-ioi-gpt2"),
        texts.IOI_PROMPT,
        [component],
        saes=[load_sae_folder(SAE)],
        mode="steer",
        strength=10.0,
    )
    assert written.mode == "steer" and written.strength == 10.0 and written.components == ["decoder:2:sae:215@13"]
    assert written.predictions == expected.predictions
    page = tmp_path / "steer.html"
    assert main(["export", str(out), "--out", str(page)]) == 0
    assert "steering (strength 10.0)" in page.read_text(encoding="utf-8")


def test_intervene_sae_mistakes_are_one_line(tmp_path: Path, capsys):
    common = ["intervene", "--model", "tiny-ioi-gpt2", "--text", texts.IOI_PROMPT, "--out", str(tmp_path / "x.json")]
    cases = [
        (["--component", "decoder:2:sae:3@1", "--sae", str(tmp_path)], "not an SAELens folder"),
        (["--component", "decoder:2:sae:3@1"], "no SAE given reads the decoder at layer 2"),
        (["--component", "decoder:2:sae:3@1", "--sae", str(SAE), "--mode", "steer"], "needs a strength"),
    ]
    for arguments, message in cases:
        assert main([*common, *arguments]) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("error:") and message in error
