"""``attribution-explorer attribute``: through ``space.cli.main`` and once as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attribution.inseq_runner import attribute
from attribution.models import bundled_model_path, load_model
from attribution.results import AttributionResult
from space.cli import EXIT_USER_ERROR, main
from tests.support import texts
from tests.support.paths import REPO
from tests.support.random_models import build_random_model

PROMPT = texts.SHORT_PROMPT


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory) -> Path:
    """A random GPT-2 saved like any Hub checkpoint, so the CLI loads it through load_model."""
    folder = tmp_path_factory.mktemp("random-gpt2")
    loaded = build_random_model("gpt2")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def test_attribute_writes_the_result_the_library_returns(gpt2_folder, tmp_path, capsys):
    out = tmp_path / "nested" / "result.json"
    status = main(
        [
            "attribute",
            "--model",
            str(gpt2_folder),
            "--method",
            "integrated_gradients",
            "--text",
            PROMPT,
            "--target",
            "to the store",
            "--step-scores",
            "probability",
            "entropy",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    result = AttributionResult.from_file(out)
    assert result.method == "integrated_gradients" and set(result.step_scores) == {"probability", "entropy"}
    assert result.target_text == f"{PROMPT} to the store" and result.n_steps == 3
    direct = attribute(load_model(str(gpt2_folder)), PROMPT, method="integrated_gradients", target="to the store")
    np.testing.assert_allclose(result.target_scores, direct.target_scores, rtol=1e-6)
    stderr = capsys.readouterr().err
    assert f"wrote {out}" in stderr and "3/3" in stderr  # the progress bar reached the last token


def test_attribute_generates_when_no_target_is_given(gpt2_folder, tmp_path):
    out = tmp_path / "generated.json"
    args = ["attribute", "--model", str(gpt2_folder), "--text", PROMPT, "--max-new-tokens", "2", "--out", str(out)]
    assert main(args) == 0
    result = AttributionResult.from_file(out)
    assert result.target_text.startswith(PROMPT) and 1 <= result.n_steps <= 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "grad_cam"], "error: Unknown attribution method 'grad_cam'; choose one of: saliency"),
        (["--method", "reagent"], "error: reagent is not available for gpt2 models"),
        (["--text", "   "], "error: The input text is empty"),
        (["--step-scores", "bogus"], "error: Unknown step score 'bogus'"),
        (["--contrast-target", "to the house"], "error: A contrast target needs a target"),
        (["--max-tokens", "2"], "error: The input text is 5 tokens long"),
    ],
)
def test_bad_input_exits_non_zero_with_one_clear_line(gpt2_folder, tmp_path, capsys, extra, message):
    out = tmp_path / "never.json"
    status = main(["attribute", "--model", str(gpt2_folder), "--text", PROMPT, "--out", str(out), *extra])
    assert status == EXIT_USER_ERROR
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and error_lines[0].startswith(message)
    assert not out.exists()


@pytest.mark.slow
def test_attribute_as_a_subprocess_on_the_bundled_translation_model(tmp_path):
    model = "tiny-synth-translate"
    assert (bundled_model_path(model) / "config.json").is_file(), (
        "bundled model missing: run examples/train_tiny_models.py"
    )
    out = tmp_path / "translation.json"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "space.cli", "attribute", "--model", model, "--method", "attention"]
    command += ["--text", "the tired friend greets this woman today", "--out", str(out)]
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    result = AttributionResult.from_file(out)
    assert result.provenance.model_kind == "seq2seq" and result.method == "attention"
    assert result.target_text == "ka amiko lasu tesu fema hodie salas"  # the model's greedy translation
    assert len(result.step_scores["probability"]) == result.n_steps

    failed = subprocess.run(
        [*command[:-2], "--method", "value_zeroing", "--out", str(out)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == EXIT_USER_ERROR
    assert failed.stderr.strip().splitlines()[-1].startswith("error: value_zeroing is not available for marian")
