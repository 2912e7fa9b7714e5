"""attribution.inseq_runner: scores against references computed here, layout, JSON, bad inputs, model safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from attribution.errors import InvalidInputError, UnsupportedError
from attribution.inseq_runner import attribute, available_methods, available_step_scores, check_supported
from attribution.results import AttributionResult
from tests.support import texts
from tests.support.random_models import build_never_ending_model, build_random_model

PROMPT = texts.SHORT_PROMPT
CONTINUATION = texts.SHORT_CONTINUATION
SOURCE = texts.SHORT_SOURCE
TRANSLATION = texts.SHORT_TRANSLATION


@pytest.fixture(scope="module")
def gpt2():
    return build_random_model("gpt2")


@pytest.fixture(scope="module")
def marian():
    return build_random_model("marian")


def _ids(loaded, text: str) -> torch.Tensor:
    return loaded.tokenizer(text, return_tensors="pt")["input_ids"][0]


def _next_token_logits(loaded, prefix: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(input_ids=prefix[None]).logits[0, -1]


def test_saliency_equals_a_hand_computed_gradient_norm(gpt2):
    """Saliency = |d p(token) / d embedding|, L2 norm over the hidden size, normalised per step."""
    result = attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    ids = _ids(gpt2, f"{PROMPT} {CONTINUATION}")
    embeddings = gpt2.model.get_input_embeddings()
    assert result.attributed_start == len(PROMPT.split()) and result.n_steps == len(CONTINUATION.split())
    for step in range(result.n_steps):
        position = result.attributed_start + step
        inputs = embeddings(ids[:position])[None].detach().requires_grad_(True)
        probability = torch.softmax(gpt2.model(inputs_embeds=inputs).logits[0, -1], -1)[ids[position]]
        probability.backward()
        norms = inputs.grad[0].abs().norm(dim=-1).numpy()
        np.testing.assert_allclose(result.target_scores[:position, step], norms / norms.sum(), rtol=1e-5)
        assert np.isnan(result.target_scores[position:, step]).all()


def test_step_scores_equal_the_models_own_distribution(gpt2):
    names = ["probability", "logit", "entropy", "crossentropy", "perplexity"]
    result = attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION, step_scores=names)
    ids = _ids(gpt2, f"{PROMPT} {CONTINUATION}")
    for step in range(result.n_steps):
        position = result.attributed_start + step
        logits = _next_token_logits(gpt2, ids[:position])
        log_probs = torch.log_softmax(logits, -1)
        expected = {
            "probability": log_probs[ids[position]].exp().item(),
            "logit": logits[ids[position]].item(),
            "entropy": -(log_probs.exp() * log_probs).sum().item(),
            "crossentropy": -log_probs[ids[position]].item(),
            "perplexity": 2 ** -log_probs[ids[position]].item(),  # Inseq's definition: 2 ** cross-entropy in nats
        }
        for name in names:
            assert result.step_scores[name][step] == pytest.approx(expected[name], rel=1e-4), name


def test_contrastive_attribution_scores_the_probability_difference(gpt2):
    contrast = "to the house"
    result = attribute(
        gpt2,
        PROMPT,
        method="saliency",
        target=CONTINUATION,
        contrast_target=contrast,
        step_scores=["probability", "contrast_prob_diff"],
    )
    assert result.method_params["attributed_fn"] == "contrast_prob_diff"
    assert result.contrast_target == f"{PROMPT} {contrast}"
    assert result.target_tokens == [*PROMPT.split(), *CONTINUATION.split()]
    ids, contrast_ids = _ids(gpt2, f"{PROMPT} {CONTINUATION}"), _ids(gpt2, f"{PROMPT} {contrast}")
    for step in range(result.n_steps):
        position = result.attributed_start + step
        probs = torch.softmax(_next_token_logits(gpt2, ids[:position]), -1)
        expected = (probs[ids[position]] - probs[contrast_ids[position]]).item()
        assert result.step_scores["contrast_prob_diff"][step] == pytest.approx(expected, abs=1e-6)
    assert result.step_scores["contrast_prob_diff"][:2] == [0.0, 0.0]  # identical tokens: no difference
    plain = attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    assert not np.allclose(plain.target_scores[:, -1], result.target_scores[:, -1], equal_nan=True)


def test_seq2seq_layout_word_ids_and_step_scores(marian):
    result = attribute(marian, SOURCE, method="input_x_gradient", target=TRANSLATION)
    assert result.source_tokens == [*SOURCE.split(), "</s>"]
    assert result.target_tokens == ["<pad>", *TRANSLATION.split(), "</s>"]  # decoder start token first
    assert result.attributed_start == 1 and result.n_steps == 4
    assert result.source_word_ids == [0, 1, 2, 3, 4, None]
    assert result.target_word_ids == [None, 0, 1, 2, None]
    assert np.isfinite(result.source_scores).all()
    prefix = np.array([[i <= j for j in range(4)] for i in range(5)])  # token i is in step j's decoder prefix
    np.testing.assert_array_equal(np.isfinite(result.target_scores), prefix)
    encoded = marian.tokenizer(SOURCE, return_tensors="pt")
    decoder_ids = torch.tensor([[0, *marian.tokenizer.convert_tokens_to_ids(TRANSLATION.split())]])
    with torch.no_grad():
        probs = torch.softmax(marian.model(**encoded, decoder_input_ids=decoder_ids).logits[0], -1)
    expected = [probs[j, decoder_ids[0, j + 1]].item() for j in range(3)]
    assert result.step_scores["probability"][:3] == pytest.approx(expected, rel=1e-4)


def _decoder_ids(loaded, result) -> torch.Tensor:
    """The decoder inputs of every step: the start token and the target tokens before the last one."""
    return torch.tensor([loaded.tokenizer.convert_tokens_to_ids(result.target_tokens[:-1])])


def test_seq2seq_saliency_equals_hand_computed_gradient_norms_on_both_sides(marian):
    """Per step: |d p(token) / d embedding| for every source token and every decoder-prefix token, L2 norm
    over the hidden size, normalised so that the step's source and target scores sum to 1 together."""
    result = attribute(marian, SOURCE, method="saliency", target=TRANSLATION)
    assert result.method_params["attribute_target"] is True
    encoded = marian.tokenizer(SOURCE, return_tensors="pt")
    decoder_ids = _decoder_ids(marian, result)
    embeddings = marian.model.get_input_embeddings()
    for step in range(result.n_steps):
        source = embeddings(encoded["input_ids"]).detach().requires_grad_(True)
        prefix = embeddings(decoder_ids[:, : step + 1]).detach().requires_grad_(True)
        output = marian.model(
            inputs_embeds=source, attention_mask=encoded["attention_mask"], decoder_inputs_embeds=prefix
        )
        next_token = result.target_tokens[step + 1]
        torch.softmax(output.logits[0, -1], -1)[marian.tokenizer.convert_tokens_to_ids(next_token)].backward()
        source_norms, prefix_norms = source.grad[0].norm(dim=-1).numpy(), prefix.grad[0].norm(dim=-1).numpy()
        total = source_norms.sum() + prefix_norms.sum()
        np.testing.assert_allclose(result.source_scores[:, step], source_norms / total, rtol=1e-5)
        np.testing.assert_allclose(result.target_scores[: step + 1, step], prefix_norms / total, rtol=1e-5)
        assert np.isnan(result.target_scores[step + 1 :, step]).all()


def test_seq2seq_attention_is_the_models_mean_cross_and_self_attention(marian):
    """Inseq's attention on seq2seq: the mean over layers and heads of the cross-attention (source side) and of
    the decoder self-attention (target side), each step's two halves scaled to sum to 1 together."""
    result = attribute(marian, SOURCE, method="attention", target=TRANSLATION)
    encoded = marian.tokenizer(SOURCE, return_tensors="pt")
    with torch.no_grad():
        output = marian.model(**encoded, decoder_input_ids=_decoder_ids(marian, result), output_attentions=True)
    cross = torch.stack(output.cross_attentions).mean(dim=(0, 2))[0].T.numpy()  # [source, step]
    own = torch.stack(output.decoder_attentions).mean(dim=(0, 2))[0].T.numpy()  # [prefix token, step]
    np.testing.assert_allclose(result.source_scores, cross / 2, atol=1e-6)
    prefix = result.target_scores[: result.n_steps]
    np.testing.assert_allclose(prefix[np.isfinite(prefix)], (own / 2)[np.isfinite(prefix)], atol=1e-6)
    np.testing.assert_allclose(np.nansum(result.target_scores, axis=0) + result.source_scores.sum(axis=0), 1.0)


@pytest.mark.parametrize("family", ["gpt2", "marian"])
def test_result_round_trips_through_json(family, gpt2, marian, tmp_path):
    loaded = gpt2 if family == "gpt2" else marian
    text, target = (PROMPT, CONTINUATION) if family == "gpt2" else (SOURCE, TRANSLATION)
    result = attribute(loaded, text, method="integrated_gradients", target=target, method_params={"n_steps": 3})
    assert result.provenance.model_id == f"random-{family}" and result.provenance.model_type == family
    assert result.provenance.library_versions["inseq"] == "0.7.1"
    assert result.method_params["n_steps"] == 3 and result.method_params["attributed_fn"] == "probability"
    path = tmp_path / "result.json"
    result.to_json(path)
    loaded_back = AttributionResult.from_file(path)
    for name in ("method", "method_params", "source_text", "target_text", "source_tokens", "target_tokens"):
        assert getattr(loaded_back, name) == getattr(result, name), name
    assert loaded_back.provenance == result.provenance
    assert loaded_back.source_word_ids == result.source_word_ids
    assert loaded_back.target_word_ids == result.target_word_ids
    assert loaded_back.step_scores == result.step_scores
    np.testing.assert_array_equal(loaded_back.target_scores, result.target_scores)
    if result.source_scores is not None:
        np.testing.assert_array_equal(loaded_back.source_scores, result.source_scores)


def test_causal_target_may_be_the_continuation_or_the_whole_text(gpt2):
    as_continuation = attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    as_whole = attribute(gpt2, PROMPT, method="saliency", target=f"{PROMPT} {CONTINUATION}")
    assert as_continuation.target_text == as_whole.target_text == f"{PROMPT} {CONTINUATION}"
    np.testing.assert_array_equal(as_continuation.target_scores, as_whole.target_scores)


@pytest.mark.parametrize("family", ["gpt2", "marian"])
def test_generated_target_is_the_models_greedy_output(family, gpt2, marian):
    loaded = gpt2 if family == "gpt2" else marian
    text = PROMPT if family == "gpt2" else SOURCE
    result = attribute(loaded, text, method="saliency", max_new_tokens=3)
    encoded = loaded.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        greedy = loaded.model.generate(**encoded, max_new_tokens=3, do_sample=False, num_beams=1)[0]
    expected = loaded.tokenizer.decode(greedy, skip_special_tokens=True).strip()
    assert result.target_text == expected
    assert 1 <= result.n_steps <= 4


def test_generation_stops_at_the_end_of_the_context(gpt2):
    almost_full = " ".join(["the"] * 62)  # the random models have 64 positions
    result = attribute(gpt2, almost_full, method="attention", max_new_tokens=20)
    assert len(result.target_tokens) <= 64 and result.n_steps <= 2
    one_left = attribute(gpt2, " ".join(["the"] * 63), method="attention", max_new_tokens=20, step_scores=[])
    assert (len(one_left.target_tokens), one_left.n_steps) == (64, 1)
    with pytest.raises(InvalidInputError) as full:
        attribute(gpt2, " ".join(["the"] * 64), method="attention")
    assert str(full.value) == (
        "The input text fills random-gpt2's whole context (64 tokens): shorten it to leave room for the generated "
        "text, or give a target."
    )


@pytest.fixture
def endless_marian():
    return build_never_ending_model("marian")


def test_seq2seq_generation_is_bounded_by_the_decoders_positions_not_the_sources(endless_marian):
    def greedy(text: str, max_new_tokens: int) -> str:
        encoded = endless_marian.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            output = endless_marian.model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )[0]
        return endless_marian.tokenizer.decode(output, skip_special_tokens=True).strip()

    # up to the 63 decoder positions after the start token, whatever max_new_tokens asks
    result = attribute(endless_marian, SOURCE, method="attention", max_new_tokens=100, step_scores=[])
    assert result.target_text == greedy(SOURCE, 63) != greedy(SOURCE, 62)
    # a source that fills the encoder does not shorten the output
    long_source = " ".join(["the"] * 60)
    result = attribute(endless_marian, long_source, method="attention", max_new_tokens=10, step_scores=[])
    assert result.target_text == greedy(long_source, 10) != greedy(long_source, 3)


@pytest.mark.parametrize("family", ["gpt2", "marian"])
def test_generation_is_greedy_whatever_the_models_generation_config_says(family):
    loaded = build_random_model(family)
    text, steps = (PROMPT, 4) if family == "gpt2" else (SOURCE, 8)
    encoded = loaded.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        greedy = loaded.model.generate(**encoded, max_new_tokens=steps, do_sample=False, num_beams=1)[0]
        beams = loaded.model.generate(**encoded, max_new_tokens=steps, do_sample=False, num_beams=3)[0]
    if family == "marian":  # Hub Marian models ship num_beams=4: here beam search gives another translation
        assert beams.tolist() != greedy.tolist()
    loaded.model.generation_config.do_sample = True  # as some Hub models ship
    loaded.model.generation_config.num_beams = 3
    loaded.model.generation_config.temperature = 5.0
    result = attribute(loaded, text, method="attention", max_new_tokens=steps, step_scores=[])
    assert result.target_text == loaded.tokenizer.decode(greedy, skip_special_tokens=True).strip()


def test_attention_computes_step_scores_in_a_separate_pass(gpt2):
    attention = attribute(gpt2, PROMPT, method="attention", target=CONTINUATION)
    saliency = attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    assert attention.step_scores["probability"] == pytest.approx(saliency.step_scores["probability"], rel=1e-6)
    column = attention.target_scores[: attention.attributed_start + 1, 1]
    assert column.sum() == pytest.approx(1.0, rel=1e-5)  # mean of attention rows over heads and layers
    # a contrastive step score needs the contrast target in that separate pass too
    options = {"target": CONTINUATION, "contrast_target": "to the house", "step_scores": ["contrast_prob_diff"]}
    attention = attribute(gpt2, PROMPT, method="attention", **options)
    saliency = attribute(gpt2, PROMPT, method="saliency", **options)
    differences = attention.step_scores["contrast_prob_diff"]
    assert differences == pytest.approx(saliency.step_scores["contrast_prob_diff"], rel=1e-6)
    assert any(abs(value) > 1e-6 for value in differences)  # the contrast changes a token


def test_progress_is_reported_up_to_the_total(gpt2):
    calls = []
    attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION, progress=lambda *args: calls.append(args))
    # one report per attributed token (the continuation's three), then the end
    assert calls == [(1, 3, "token 1 of 3"), (2, 3, "token 2 of 3"), (3, 3, "token 3 of 3"), (3, 3, "done")]
    calls.clear()  # attention is read at the last step only: one step
    attribute(gpt2, PROMPT, method="attention", target=CONTINUATION, progress=lambda *args: calls.append(args))
    assert calls == [(1, 1, "token 1 of 1"), (1, 1, "done")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "empty"),
        ({"text": "  \n\t"}, "empty"),
        ({"text": " ".join(["the"] * 70)}, "accepts at most 64"),
        ({"max_tokens": 3}, "accepts at most 3"),
        ({"method": "grad_cam"}, r"choose one of: saliency, input_x_gradient, [^.]*occlusion(?![^.]*value_zeroing)"),
        ({"method": "value_zeroing"}, "Methods that work: saliency"),
        ({"step_scores": ["bogus"]}, "Unknown step score 'bogus'"),
        ({"contrast_target": "to the house", "target": None}, "needs a target"),
        ({"step_scores": ["contrast_prob_diff"]}, "contrast target: give one"),
        (
            {"method_params": {"n_stepz": 3}, "method": "integrated_gradients"},
            "Unknown parameter 'n_stepz' for integrated_gradients; it accepts: internal_batch_size",
        ),
        ({"target": PROMPT}, "only repeats the prompt"),
        ({"target": "   "}, "The target is empty"),
        ({"max_new_tokens": 0, "target": None}, "max_new_tokens must be a positive"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(gpt2, kwargs, message):
    arguments = {"text": PROMPT, "method": "saliency", "target": CONTINUATION, **kwargs}
    text = arguments.pop("text")
    with pytest.raises((InvalidInputError, UnsupportedError), match=message):
        attribute(gpt2, text, **arguments)


def test_attention_needs_eager_attention():
    loaded = build_random_model("llama")
    loaded.model.set_attn_implementation("sdpa")
    with pytest.raises(UnsupportedError) as refused:
        check_supported(loaded, "attention")
    assert str(refused.value) == (
        "attention needs the model's attention weights, but random-llama was loaded with 'sdpa' attention; load it "
        "with eager attention (load_model(..., eager_attention=True))."
    )
    check_supported(loaded, "saliency")


def test_offered_names():
    assert available_methods()[:3] == ["saliency", "input_x_gradient", "integrated_gradients"]
    assert "attention" in available_methods() and "dummy" not in available_methods()
    assert available_step_scores()[0] == "probability" and "contrast_prob_diff" in available_step_scores()


def test_model_config_and_tokenizer_are_left_as_they_were():
    loaded = build_random_model("gpt2")
    loaded.tokenizer.pad_token = None
    loaded.model.config.pad_token_id = None
    encoded = loaded.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        before = loaded.model(**encoded).logits
    for method in ("saliency", "attention", "occlusion"):
        attribute(loaded, PROMPT, method=method, target=CONTINUATION)
    assert loaded.tokenizer.pad_token is None and loaded.model.config.pad_token_id is None
    assert not loaded.model.training
    assert all(p.grad is None for p in loaded.model.parameters())
    leftover_hooks = [
        hook
        for module in loaded.model.modules()
        for hook in [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
        if not str(getattr(hook, "__module__", "")).startswith("transformers")  # its own output-capturing hooks
    ]
    assert leftover_hooks == []
    with torch.no_grad():
        assert torch.equal(before, loaded.model(**encoded).logits)


def test_concurrent_calls_on_one_model_give_the_serial_results(gpt2):
    serial = {m: attribute(gpt2, PROMPT, method=m, target=CONTINUATION) for m in ("saliency", "attention")}
    results, errors = {}, []

    def run(method: str) -> None:
        try:
            results[method] = attribute(gpt2, PROMPT, method=method, target=CONTINUATION)
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(m,)) for m in ("saliency", "attention", "saliency", "attention")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for method, result in results.items():
        np.testing.assert_array_equal(result.target_scores, serial[method].target_scores)


def test_unknown_words_keep_their_word_ids(marian):
    result = attribute(marian, "the zebra sees the dog", method="saliency", target="die zebra sieht")
    assert result.source_tokens[1] == result.target_tokens[2] == "<unk>"
    assert result.source_word_ids == [0, 1, 2, 3, 4, None]
    assert result.target_word_ids == [None, 0, 1, 2, None]


def _subword_tokenizer():
    """A SentencePiece-style BPE (``▁`` word starts) small enough for the random models' embeddings."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    corpus = ["when mary and john went to the store, john gave a drink to mary", "the katzenhaus sees a hundehaus"]
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>", "<s>", "</s>", "<unk>"])
    backend.train_from_iterator(corpus * 5, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def test_subword_pieces_map_to_their_whitespace_words():
    loaded = build_random_model("gpt2")
    loaded.tokenizer = _subword_tokenizer()
    prompt = "when mary went to the katzenhaus, john"
    result = attribute(loaded, prompt, method="saliency", target="gave a drink")
    assert len(result.target_tokens) > len(result.target_text.split())  # some words are split
    words = result.target_text.split()
    for index, word in enumerate(words):
        pieces = [t for t, w in zip(result.target_tokens, result.target_word_ids, strict=True) if w == index]
        assert "".join(pieces).replace("▁", "") == word
    assert None not in result.target_word_ids


def test_generated_text_keeps_the_prompt_as_typed_and_drops_special_tokens():
    """A prompt word the tokenizer does not know (decoded as nothing) and an end-of-text token at the end."""
    loaded = build_random_model("gpt2")
    loaded.model.generation_config.forced_eos_token_id = loaded.tokenizer.eos_token_id  # the last new token
    prompt = "when zebra went"
    encoded = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        greedy = loaded.model.generate(**encoded, max_new_tokens=3, do_sample=False, num_beams=1)[0]
    words = loaded.tokenizer.convert_ids_to_tokens(greedy[3:5])
    assert greedy[-1] == loaded.tokenizer.eos_token_id and loaded.tokenizer.unk_token_id in greedy[:3]
    result = attribute(loaded, prompt, method="attention", max_new_tokens=3, step_scores=[])
    assert result.target_text == f"{prompt} {' '.join(words)}"
    known = attribute(loaded, PROMPT, method="attention", max_new_tokens=3, step_scores=[])
    assert "</s>" not in known.target_text and len(known.target_text.split()) == len(PROMPT.split()) + 2
    with pytest.raises(InvalidInputError) as nothing:
        attribute(loaded, prompt, method="attention", max_new_tokens=1)
    assert str(nothing.value) == (
        "random-gpt2 generated nothing for this input (it ended the text at once); give a target to explain."
    )


def test_a_continuation_inside_the_last_word_is_not_split_off():
    """With subword pieces, the model may continue the prompt's last word: no space is put in between."""
    loaded = build_random_model("gpt2")
    loaded.tokenizer = _subword_tokenizer()
    vocab = loaded.tokenizer.get_vocab()  # only pieces that continue a word may be generated
    loaded.model.generation_config.suppress_tokens = [i for t, i in vocab.items() if t.startswith(("▁", "<"))]
    prompt = "when mary went to the store"
    result = attribute(loaded, prompt, method="attention", max_new_tokens=2, step_scores=[])
    pieces = result.target_tokens[-2:]
    assert not any(piece.startswith("▁") for piece in pieces)
    assert result.target_text == prompt + "".join(pieces)


def test_seq2seq_target_is_held_to_the_length_limit_too(marian):
    with pytest.raises(InvalidInputError, match="accepts at most 3"):
        attribute(marian, "the cat", method="saliency", target="die katze sieht das", max_tokens=3)


@pytest.mark.parametrize(("family", "target", "total"), [("gpt2", "to", 1), ("marian", TRANSLATION, 4)])
def test_progress_total_is_the_number_of_steps(family, target, total, gpt2, marian):
    loaded = gpt2 if family == "gpt2" else marian
    text = PROMPT if family == "gpt2" else SOURCE
    calls = []
    result = attribute(loaded, text, method="saliency", target=target, progress=lambda *args: calls.append(args))
    assert result.n_steps == total and {call[1] for call in calls} == {total}


def test_a_prompt_and_continuation_longer_than_the_limit_together_are_refused_as_such(gpt2):
    """Each fits in 6 tokens, together they are 8: the refusal names the whole text."""
    with pytest.raises(InvalidInputError) as refused:
        attribute(gpt2, "when mary and john went", target="to the store", max_tokens=6)
    assert str(refused.value) == (
        "The prompt with its target is 8 tokens long; random-gpt2 accepts at most 6 here. Shorten it."
    )
    assert attribute(gpt2, "when mary and john went", target="to the store", max_tokens=8).target_text == (
        "when mary and john went to the store"
    )


def test_results_record_how_inseq_aggregated_the_scores(gpt2, marian):
    """Gradient methods reduce each token's gradient vector to its L2 norm; attention is averaged (see
    ``test_attention_computes_step_scores_in_a_separate_pass`` for the averaged rows)."""
    saliency = attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    assert saliency.method_params["aggregation"] == "vnorm"
    attention = attribute(marian, SOURCE, method="attention", target=TRANSLATION)
    assert attention.method_params["aggregation"] == "mean+mean+mean"
    from types import SimpleNamespace

    from attribution.inseq_runner import _aggregation_name

    # scores Inseq did not aggregate (an older Inseq without the attribute, or no aggregator set) say so
    assert _aggregation_name(SimpleNamespace()) == _aggregation_name(SimpleNamespace(_aggregator=[None])) == "none"


def test_scores_of_an_unexpected_shape_are_an_error_naming_both_shapes():
    """Inseq's scores must cover the tokens the result names; a mismatch is never silently cut or padded."""
    from attribution.inseq_runner import _matrix

    with pytest.raises(RuntimeError) as error:
        _matrix(torch.zeros(2, 3), (3, 3))
    assert str(error.value) == "Inseq returned scores of shape (2, 3), expected (3, 3)"
    assert np.isnan(_matrix(None, (2, 2))).all()


def test_byte_level_pieces_map_to_their_whitespace_words_even_around_a_double_space(tmp_path):
    """A double space gives a lone ``Ġ`` piece: by the tokenizer's offsets it belongs to the word after it (a
    word-start marker alone would count it as a word of its own)."""
    from attribution.models import load_model
    from tests.support.real_tokenizers import save_bpe_gpt2

    loaded = load_model(str(save_bpe_gpt2(tmp_path / "bpe-gpt2")))
    result = attribute(loaded, "When  Mary went", method="saliency", target="to the store")
    assert "Ġ" in result.target_tokens  # the lone piece
    words = result.target_text.split()
    assert max(result.target_word_ids) == len(words) - 1 and None not in result.target_word_ids
    for index, word in enumerate(words):
        pieces = [t for t, w in zip(result.target_tokens, result.target_word_ids, strict=True) if w == index]
        assert "".join(pieces).replace("Ġ", "") == word


def test_a_slow_sentencepiece_tokenizer_maps_pieces_to_words_by_their_markers(tmp_path):
    """opus-mt models ship only Marian's slow (Python) SentencePiece tokenizer, without character offsets: word
    ids then come from the ``▁`` word-start markers."""
    import json

    import sentencepiece
    from transformers import AutoModelForSeq2SeqLM, MarianConfig, MarianTokenizer

    from attribution.models import LoadedModel
    from tests.support.real_tokenizers import CORPUS

    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS * 4), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(tmp_path / "corpus.txt"), model_prefix=str(tmp_path / "spm"), vocab_size=80,
        model_type="unigram", pad_id=-1, eos_id=-1, bos_id=-1, unk_id=0, minloglevel=2,
    )  # fmt: skip
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    vocab = {"</s>": 0, "<unk>": 1, "<pad>": 2}
    for index in range(pieces.get_piece_size()):
        vocab.setdefault(pieces.id_to_piece(index), len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    spm = str(tmp_path / "spm.model")
    tokenizer = MarianTokenizer(source_spm=spm, target_spm=spm, vocab=str(tmp_path / "vocab.json"))
    assert not tokenizer.is_fast
    config = MarianConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=2, eos_token_id=0, decoder_start_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(config, attn_implementation="eager").eval()
    loaded = LoadedModel(model_id="slow-marian", model=model, tokenizer=tokenizer, kind="seq2seq")
    source, target = "When Mary and John went to the store", "Mary gave a drink"
    result = attribute(loaded, source, method="saliency", target=target)
    assert len(result.source_tokens) > len(source.split()) + 1  # some words are split into pieces
    for text, tokens, word_ids in (
        (source, result.source_tokens, result.source_word_ids),
        (target, result.target_tokens, result.target_word_ids),
    ):
        for index, word in enumerate(text.split()):
            pieces_of_word = [t for t, w in zip(tokens, word_ids, strict=True) if w == index]
            assert "".join(pieces_of_word).replace("▁", "") == word


def test_lone_sentencepiece_spaces_belong_to_the_next_word_or_to_none_at_the_end(tmp_path):
    """Offsets of a fast Unigram tokenizer: a lone ``▁`` from a double space belongs to the word after it, a
    trailing one to no word (whitespace words of the text are the ground truth)."""
    from attribution.models import load_model
    from tests.support.real_tokenizers import save_unigram_marian

    loaded = load_model(str(save_unigram_marian(tmp_path / "unigram-marian")))
    trailing = attribute(loaded, "When Mary went ", target="Mary gave ", method="saliency")
    assert trailing.source_tokens == ["▁", "W", "hen", "▁Mary", "▁w", "en", "t", "▁", "</s>"]
    assert trailing.source_word_ids == [0, 0, 0, 1, 2, 2, 2, None, None]
    assert trailing.target_word_ids == [None, 0, 1, 1, 1, None, None]
    double = attribute(loaded, "When  Mary went", target="Mary  gave", method="saliency")
    assert double.source_tokens == ["▁", "W", "hen", "▁", "▁Mary", "▁w", "en", "t", "</s>"]
    assert double.source_word_ids == [0, 0, 0, 1, 1, 2, 2, 2, None]
    assert double.target_word_ids == [None, 0, 1, 1, 1, 1, None]


def test_without_offsets_or_word_markers_each_token_is_a_word(marian, monkeypatch):
    """A tokenizer that gives no character offsets (slow) and whose pieces carry no word-start marker: each
    piece is taken as a word of its own, in order (here the word-level tokenizer's pieces are the words)."""
    monkeypatch.setattr(type(marian.tokenizer), "is_fast", property(lambda self: False))
    result = attribute(marian, SOURCE, target=TRANSLATION, method="saliency")
    assert result.source_word_ids == [0, 1, 2, 3, 4, None]
    assert result.target_word_ids == [None, 0, 1, 2, None]


def test_attribution_prints_no_progress_display(gpt2, capfd):
    """The CLI and the app report progress themselves; Inseq's own display ("Attributing with …" panels) would
    clutter a terminal, a log, or the CLI's JSON on stdout."""
    attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    captured = capfd.readouterr()
    assert "Attributing with" not in captured.out + captured.err


def test_a_failure_on_an_untested_family_is_a_clear_refusal_and_on_a_tested_one_the_error_itself(gpt2, monkeypatch):
    import inseq
    from transformers import AutoModelForCausalLM, GPTJConfig

    from attribution.errors import UnsupportedError
    from attribution.models import LoadedModel
    from tests.support.random_models import word_level_tokenizer

    first_line = "shapes do not match"

    def fails(self, *args, **kwargs):
        raise RuntimeError(f"{first_line}\nTraceback details")

    monkeypatch.setattr(inseq.models.HuggingfaceDecoderOnlyModel, "attribute", fails)
    config = GPTJConfig(vocab_size=200, n_embd=16, n_layer=1, n_head=2, rotary_dim=4, n_positions=64)
    gptj = LoadedModel(
        "random-gptj", AutoModelForCausalLM.from_config(config).eval(), word_level_tokenizer(append_eos=False), "causal"
    )
    with pytest.raises(UnsupportedError) as refused:
        attribute(gptj, PROMPT, method="saliency", target=CONTINUATION)
    assert str(refused.value) == (
        "saliency failed on this gptj model, an architecture we have not tested (RuntimeError: shapes do not "
        "match). Try saliency or attention."
    )
    with pytest.raises(RuntimeError, match=r"^shapes do not match"):
        attribute(gpt2, PROMPT, method="saliency", target=CONTINUATION)
    first_line = "x" * 250  # a long first line is cut at 200 characters
    with pytest.raises(UnsupportedError) as refused:
        attribute(gptj, PROMPT, method="saliency", target=CONTINUATION)
    assert f"(RuntimeError: {'x' * 200}). Try" in str(refused.value)


def test_method_parameters_reach_the_method(gpt2):
    """Integrated gradients with 2 steps is a coarser approximation than with 32: the numbers differ, and the
    same parameters give the same numbers."""
    coarse = attribute(gpt2, PROMPT, method="integrated_gradients", target=CONTINUATION, method_params={"n_steps": 2})
    fine = attribute(gpt2, PROMPT, method="integrated_gradients", target=CONTINUATION, method_params={"n_steps": 32})
    again = attribute(gpt2, PROMPT, method="integrated_gradients", target=CONTINUATION, method_params={"n_steps": 2})
    assert not np.allclose(coarse.target_scores, fine.target_scores, equal_nan=True)
    np.testing.assert_array_equal(coarse.target_scores, again.target_scores)


@pytest.mark.parametrize(
    ("method", "accepted"),
    [
        ("integrated_gradients", "internal_batch_size, method, n_steps"),
        ("saliency", "abs"),
        ("input_x_gradient", "none"),
    ],
)
def test_an_unknown_method_parameter_is_refused_listing_what_the_method_accepts(gpt2, method, accepted):
    with pytest.raises(InvalidInputError) as refused:
        attribute(gpt2, PROMPT, target=CONTINUATION, method=method, method_params={"bogus": 1})
    assert str(refused.value) == f"Unknown parameter 'bogus' for {method}; it accepts: {accepted}."


def test_generating_the_target_is_reported_first(gpt2):
    calls = []
    attribute(gpt2, PROMPT, method="saliency", max_new_tokens=2, progress=lambda *args: calls.append(args))
    assert calls == [(0, 1, "generating"), (1, 2, "token 1 of 2"), (2, 2, "token 2 of 2"), (2, 2, "done")]


def test_a_contrast_target_is_checked_as_the_target_is(gpt2):
    with pytest.raises(InvalidInputError) as empty:
        attribute(gpt2, PROMPT, target=CONTINUATION, contrast_target="  ", step_scores=["contrast_prob_diff"])
    assert str(empty.value) == "The contrast target is empty: type some text first."
    with pytest.raises(InvalidInputError) as too_long:  # with the prompt the target fits, the contrast does not
        attribute(
            gpt2, PROMPT, target="to", contrast_target="to the big house", max_tokens=7,
            step_scores=["contrast_prob_diff"],
        )  # fmt: skip
    assert str(too_long.value) == (
        "The prompt with its contrast target is 9 tokens long; random-gpt2 accepts at most 7 here. Shorten it."
    )
