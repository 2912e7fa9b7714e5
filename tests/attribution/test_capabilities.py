"""The capability table (attribution/capabilities.py) checked against reality.

The expectations come from the table itself, as a user reads it (``markdown_table()``, the table in
``docs/feature-attribution.md``), never from the result under test:

- ``yes``: the method runs and gives finite scores exactly where Inseq's layout has them (NaN
  elsewhere), with a non-zero score at every step on every side the table promises: the prompt for
  causal models; the source *and* the decoder prefix for seq2seq models.
- ``source only`` (seq2seq): finite, non-zero source scores at every step; the target side all NaN.
- ``no (n)``: refused up front with note *n* and the list of methods that work; forced past the
  check, the method fails in the way note *n* describes (or gives only zeros where the note says
  so), and the model is left exactly as it was.

Families come from :data:`attribution.capabilities.TESTED_FAMILIES`: a new row there is tested here
without editing this file.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from attribution.capabilities import METHODS, TESTED_FAMILIES, markdown_table, supported_methods
from attribution.errors import UnsupportedError
from attribution.inseq_runner import attribute, check_supported, run_checked
from tests.support import texts
from tests.support.paths import REPO
from tests.support.random_models import FAMILIES, build_random_model
from tests.support.tiers import across_families

PROMPT = texts.SHORT_PROMPT
CONTINUATION = texts.SHORT_CONTINUATION
SOURCE = texts.SHORT_SOURCE
TRANSLATION = texts.SHORT_TRANSLATION
PAGE = REPO / "docs" / "feature-attribution.md"


@dataclass(frozen=True)
class Cell:
    """One cell of the capability table as printed: ``yes``, ``source only`` or ``no`` with its note."""

    method: str
    family: str
    text: str
    note: str | None  # the refusal note of a "no (n)" cell

    @property
    def kind(self) -> str:
        return TESTED_FAMILIES[self.family]

    @property
    def refused(self) -> bool:
        return self.text.startswith("no")

    @property
    def promises_target_side(self) -> bool:
        """Causal results always explain the prompt; seq2seq ones the decoder prefix only when ``yes``."""
        return self.kind == "causal" or self.text == "yes"


def parse_table(markdown: str) -> list[Cell]:
    """The cells of :func:`markdown_table`'s output, each ``no (n)`` with the text of note ``(n)``."""
    lines = markdown.splitlines()
    families = [name.strip() for name in lines[0].strip("|").split("|")[1:]]
    notes = {number: text.rstrip(".") for number, text in re.findall(r"^\((\d+)\) (.*)$", markdown, re.M)}
    cells = []
    for line in lines[2:]:
        if not line.startswith("| `"):
            break
        name, *texts = (part.strip() for part in line.strip("|").split("|"))
        for family, text in zip(families, texts, strict=True):
            number = re.fullmatch(r"no \((\d+)\)", text)
            assert text in ("yes", "source only") or number, f"unexpected cell {text!r}"
            cells.append(Cell(name.strip("`"), family, text, notes[number.group(1)] if number else None))
    return cells


CELLS = parse_table(markdown_table())
REFUSED = [cell for cell in CELLS if cell.refused]


def _ids(cells: list[Cell]) -> list[str]:
    return [f"{cell.method}-{cell.family}" for cell in cells]


@pytest.fixture(scope="module")
def models():
    """Random-initialised 2-layer models, built on first use (one per family)."""
    built = {}

    def get(family: str):
        if family not in built:
            built[family] = build_random_model(family)
        return built[family]

    return get


def test_every_tested_family_has_a_random_model():
    assert set(TESTED_FAMILIES) <= set(FAMILIES)
    assert {(cell.method, cell.family) for cell in CELLS} == {(m, f) for m in METHODS for f in TESTED_FAMILIES}


def test_the_docs_show_the_current_table():
    assert markdown_table() in PAGE.read_text(encoding="utf-8"), "regenerate it: python -m attribution.capabilities"


def _inputs(kind: str) -> tuple[str, str]:
    return (SOURCE, TRANSLATION) if kind == "seq2seq" else (PROMPT, CONTINUATION)


def _layout(kind: str) -> tuple[int, int, int, np.ndarray]:
    """(source tokens, target tokens, attributed start, prefix mask [target tokens, steps]) from the texts alone.

    The random models' tokenizer is word-level: causal target = prompt + continuation words, explained
    from the first continuation word; seq2seq source = words + ``</s>``, target = decoder start token +
    words + ``</s>``, explained from the first word. Token *i* is in step *j*'s prefix when i < start + j.
    """
    if kind == "seq2seq":
        n_source, n_target, start = len(SOURCE.split()) + 1, len(TRANSLATION.split()) + 2, 1
    else:
        n_source, n_target, start = 0, len(PROMPT.split()) + len(CONTINUATION.split()), len(PROMPT.split())
    prefix = np.array([[i < start + j for j in range(n_target - start)] for i in range(n_target)])
    return n_source, n_target, start, prefix


def _logits(loaded) -> torch.Tensor:
    encoded = loaded.tokenizer(SOURCE if loaded.kind == "seq2seq" else PROMPT, return_tensors="pt")
    with torch.no_grad():
        if loaded.kind == "seq2seq":
            return loaded.model(**encoded, decoder_input_ids=torch.tensor([[0, 5, 6]])).logits
        return loaded.model(**encoded).logits


def _hook_count(model: torch.nn.Module) -> int:
    """Hooks on the model, except transformers' own output-capturing ones (added once, on first use)."""
    return sum(
        not str(getattr(hook, "__module__", "")).startswith("transformers")
        for module in model.modules()
        for hook in [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
    )


@pytest.mark.parametrize("cell", across_families(CELLS, lambda cell: cell.family), ids=_ids(CELLS))
def test_capability_cell(models, cell):
    loaded = models(cell.family)
    text, target = _inputs(cell.kind)
    if cell.refused:
        with pytest.raises(UnsupportedError) as refused:
            attribute(loaded, text, method=cell.method, target=target)
        message = str(refused.value)
        assert cell.note in message and "Methods that work: saliency" in message
        return
    before = _logits(loaded)
    params = dict(METHODS[cell.method].fast_params)
    result = attribute(loaded, text, method=cell.method, target=target, method_params=params)

    n_source, n_target, start, prefix = _layout(cell.kind)
    n_steps = n_target - start
    assert (len(result.source_tokens), len(result.target_tokens)) == (n_source, n_target)
    assert (result.attributed_start, result.n_steps) == (start, n_steps)
    assert result.target_scores.shape == (n_target, n_steps)
    assert result.method_params["attribute_target"] is cell.promises_target_side

    target_scores = result.target_scores
    if cell.promises_target_side:
        np.testing.assert_array_equal(np.isfinite(target_scores), prefix)
        # At the first seq2seq step the prefix is only the decoder start token (the padding embedding, and
        # the baseline of baseline methods): its score may be 0. Every later prefix must carry some score.
        first = 1 if cell.kind == "seq2seq" else 0
        nonzero = np.nansum(np.abs(target_scores), axis=0) > 0
        assert nonzero[first:].all(), f"target-side scores are zero at steps {np.flatnonzero(~nonzero).tolist()}"
    else:
        assert np.isnan(target_scores).all(), "the table says source only, but the result has target-side scores"

    if cell.kind == "seq2seq":
        assert result.source_scores.shape == (n_source, n_steps)
        assert np.isfinite(result.source_scores).all()
        nonzero = np.abs(result.source_scores).sum(axis=0) > 0
        assert nonzero.all(), f"source scores are zero at steps {np.flatnonzero(~nonzero).tolist()}"
    else:
        assert result.source_scores is None

    probabilities = np.array(result.step_scores["probability"])
    assert probabilities.shape == (n_steps,) and np.all((probabilities > 0) & (probabilities <= 1))
    assert torch.equal(before, _logits(loaded)), "the attribution run changed the model"


# ------------------------------------------------------------------------ refusals forced past the check


@dataclass(frozen=True)
class DescribedFailure:
    """How a refused method fails when forced, as its refusal note says.

    ``errors`` empty: it runs and every score is zero. Otherwise it raises one of ``errors``, whose
    message matches ``message`` and whose traceback passes through a file whose path holds ``raised_in``.
    """

    errors: tuple[type[BaseException], ...] = ()
    message: str | None = None
    raised_in: str = "/"


_HOOK_NEVER_RAN = DescribedFailure(
    (AssertionError,), "Forward hook did not obtain any outputs", raised_in="captum/_utils/gradient.py"
)


def described_failure(cell: Cell) -> DescribedFailure:
    """The failure note ``cell.note`` describes, for this cell's family (each note is matched by its words)."""
    note = cell.note
    if "value_zeroing cannot patch this architecture's attention" in note:
        return DescribedFailure((ValueError, TypeError), raised_in="inseq/attr/feat/ops/value_zeroing.py")
    if "value_zeroing returns all-zero scores" in note:
        return DescribedFailure()
    if "needs NLTK" in note:
        return DescribedFailure((ImportError, LookupError), "(?i)nltk", "/inseq/")
    if "'Forward hook did not obtain any outputs'" in note:
        return _HOOK_NEVER_RAN
    if "returns all-zero scores for it on decoder-only and Marian models and fails on BART and T5" in note:
        return DescribedFailure() if cell.kind == "causal" or cell.family == "marian" else _HOOK_NEVER_RAN
    raise AssertionError(f"describe how {cell.method} fails on {cell.family} for the note {note!r}")


@pytest.mark.parametrize("cell", across_families(REFUSED, lambda cell: cell.family), ids=_ids(REFUSED))
def test_refusals_fail_as_their_note_says_and_leave_the_model_intact(models, cell):
    loaded = models(cell.family)
    text, target = (SOURCE, TRANSLATION) if cell.kind == "seq2seq" else (PROMPT, f"{PROMPT} {CONTINUATION}")
    expected = described_failure(cell)
    before, hooks_before = _logits(loaded), _hook_count(loaded.model)

    def force():
        return run_checked(
            loaded,
            METHODS[cell.method],
            text,
            target=target,
            step_scores=[],
            contrast_target=None,
            method_params={},
            max_new_tokens=2,
            progress=lambda *args: None,
        )

    if expected.errors:
        with pytest.raises(expected.errors, match=expected.message) as failure:
            force()
        frames = [frame.filename for frame in traceback.extract_tb(failure.value.__traceback__)]
        assert any(expected.raised_in in name for name in frames), (failure.value, frames[-4:])
    else:
        forced = force()
        for scores in (forced.source_scores, forced.target_scores):
            if scores is not None:
                assert np.nansum(np.abs(scores)) == 0
        assert np.isfinite(forced.source_scores if cell.kind == "seq2seq" else forced.target_scores).any()
    assert torch.equal(before, _logits(loaded))
    assert _hook_count(loaded.model) == hooks_before
    after = attribute(loaded, text, method="saliency", target=target)
    assert np.isfinite(after.step_scores["probability"]).all()


def test_every_refusal_note_is_described():
    notes = {cell.note for cell in REFUSED}
    assert len(notes) >= 3
    for cell in REFUSED:
        described_failure(cell)


# ------------------------------------------------------------------------------------ the table itself


def test_check_supported_accepts_every_working_method(models):
    for family, kind in TESTED_FAMILIES.items():
        working = supported_methods(kind, family)
        assert working == [cell.method for cell in CELLS if cell.family == family and not cell.refused]
        for method in working:
            check_supported(models(family), method)
        assert {"saliency", "attention", "integrated_gradients", "occlusion"} <= set(working)


def test_markdown_table_has_a_row_per_method_and_a_column_per_family():
    table = markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(METHODS)
    assert all(row.count("|") == len(TESTED_FAMILIES) + 2 for row in rows)
    by_cell = {(cell.method, cell.family): cell.text for cell in CELLS}
    assert by_cell[("saliency", "gpt2")] == "yes" and by_cell[("value_zeroing", "t5")] == "yes"
    assert by_cell[("lime", "marian")] == "source only" and by_cell[("lime", "gpt2")] == "yes"
    assert by_cell[("value_zeroing", "gpt2")].startswith("no (")
