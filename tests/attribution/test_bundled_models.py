"""The tiny models bundled in examples/models: loadable offline, small, and accurate on held-out data.

They are the ground truth other tests build on (an IOI model that really predicts the indirect
object, a translation model that really translates by a known alignment), so these tests check
the shipped files against the shipped held-out sets and the generator in the training script.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest
import torch

from attribution.bundled import BUNDLED_MODELS_DIR
from attribution.models import LoadedModel, load_model
from tests.support.paths import REPO

EXAMPLES_DIR = REPO / "examples"
DATA_DIR = EXAMPLES_DIR / "data"
MAX_FOLDER_BYTES = 5 * 1024 * 1024
PHARAOH = re.compile(r"^\d+-\d+( \d+-\d+)*$")


def _load_training_script():
    """Import examples/train_tiny_models.py (a script, not a package) without running it."""
    path = EXAMPLES_DIR / "train_tiny_models.py"
    spec = importlib.util.spec_from_file_location("train_tiny_models", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


train_tiny_models = _load_training_script()


def _read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA_DIR / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ioi_model() -> LoadedModel:
    return load_model("tiny-ioi-gpt2", cache=None)


@pytest.fixture(scope="module")
def translate_model() -> LoadedModel:
    return load_model("tiny-synth-translate", cache=None)


@pytest.fixture(scope="module")
def ioi_test() -> list[dict]:
    return _read_jsonl("ioi_test.jsonl")


@pytest.fixture(scope="module")
def translate_test() -> list[dict]:
    return _read_jsonl("synth_translate_test.jsonl")


@pytest.mark.parametrize("name", ["tiny-ioi-gpt2", "tiny-synth-translate"])
def test_model_folder_is_small_and_complete(name: str) -> None:
    folder = BUNDLED_MODELS_DIR / name
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < MAX_FOLDER_BYTES


def test_ioi_model_loads_as_causal_gpt2_with_word_tokenizer(ioi_model: LoadedModel) -> None:
    assert ioi_model.kind == "causal"
    assert ioi_model.model_type == "gpt2"
    tokenizer = ioi_model.tokenizer
    prompt = "When Mary and John went to the store, John gave a drink to"
    ids = tokenizer(prompt)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == prompt.replace(",", " ,").split()
    assert tokenizer.decode(ids, skip_special_tokens=True) == prompt
    assert tokenizer.unk_token_id not in ids


def test_ioi_model_predicts_the_indirect_object_on_held_out_name_pairs(ioi_model: LoadedModel, ioi_test) -> None:
    assert len(ioi_test) >= 200
    tokenizer = ioi_model.tokenizer
    encoded = tokenizer([item["prompt"] for item in ioi_test], padding=True, return_tensors="pt")
    assert tokenizer.padding_side == "right"
    with torch.no_grad():
        logits = ioi_model.model(**encoded).logits
    last = encoded["attention_mask"].sum(dim=1) - 1
    predicted = logits[torch.arange(len(ioi_test)), last].argmax(dim=-1).tolist()
    predicted_names = tokenizer.convert_ids_to_tokens(predicted)
    accuracy = sum(p == item["io"] == item["answer"] for p, item in zip(predicted_names, ioi_test, strict=True))
    assert accuracy / len(ioi_test) >= 0.95


def test_ioi_test_set_uses_only_name_pairs_unseen_in_training(ioi_test) -> None:
    train, generated_test = train_tiny_models.generate_ioi_data()
    train_pairs = {frozenset((e.subject, e.io)) for e in train}
    test_pairs = {frozenset((item["subject"], item["io"])) for item in ioi_test}
    assert test_pairs and not test_pairs & train_pairs
    assert {name for pair in test_pairs for name in pair} <= {name for pair in train_pairs for name in pair}
    assert not {item["prompt"] for item in ioi_test} & {e.prompt for e in train}
    assert [item["prompt"] for item in ioi_test] == [e.prompt for e in generated_test]
    for item in ioi_test:
        words = train_tiny_models.pre_tokenize(item["prompt"])
        assert words.count(item["subject"]) == 2 and words.count(item["io"]) == 1


def test_translation_model_loads_as_seq2seq_marian_with_shared_word_tokenizer(translate_model: LoadedModel) -> None:
    assert translate_model.kind == "seq2seq"
    assert translate_model.model_type == "marian"
    tokenizer = translate_model.tokenizer
    config = translate_model.config
    assert config.decoder_start_token_id == tokenizer.pad_token_id
    source = tokenizer("the old cat sees a bird")["input_ids"]
    target = tokenizer(text_target="ka miru vesa mi avi vidas")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(source) == [*["the", "old", "cat", "sees", "a", "bird"], "</s>"]
    assert tokenizer.convert_ids_to_tokens(target) == [*["ka", "miru", "vesa", "mi", "avi", "vidas"], "</s>"]
    assert tokenizer.unk_token_id not in source + target


def test_translation_model_translates_held_out_sentences_exactly(translate_model: LoadedModel, translate_test) -> None:
    assert len(translate_test) >= 200
    tokenizer = translate_model.tokenizer
    encoded = tokenizer([item["source"] for item in translate_test], padding=True, return_tensors="pt")
    with torch.no_grad():
        generated = translate_model.model.generate(**encoded, num_beams=1, do_sample=False, max_new_tokens=16)
    outputs = tokenizer.batch_decode(generated, skip_special_tokens=True)
    exact = sum(out.strip() == item["target"] for out, item in zip(outputs, translate_test, strict=True))
    assert exact / len(translate_test) >= 0.90


def test_translation_alignments_are_valid_one_to_one_pharaoh(translate_test) -> None:
    lexicon = train_tiny_models.LEXICON
    for item in translate_test:
        source, target = item["source"].split(), item["target"].split()
        assert PHARAOH.match(item["alignment"]), item["alignment"]
        links = [tuple(map(int, link.split("-"))) for link in item["alignment"].split()]
        assert sorted(s for s, _ in links) == list(range(len(source)))
        assert sorted(t for _, t in links) == list(range(len(target)))
        # Each link joins a word to its lexicon translation: the alignment is the gold one.
        assert all(lexicon[source[s]] == target[t] for s, t in links)


def test_translation_test_sentences_never_occur_in_training(translate_test) -> None:
    train, generated_test = train_tiny_models.generate_translation_data()
    assert not {item["source"] for item in translate_test} & {pair.source for pair in train}
    assert [item["source"] for item in translate_test] == [pair.source for pair in generated_test]
    for item in translate_test:
        expected = train_tiny_models.translate_sentence(item["source"].split())
        assert (item["target"], item["alignment"]) == (expected.target, expected.alignment)


def test_samples_file_lists_ioi_prompts_and_aligned_translations() -> None:
    samples = json.loads((DATA_DIR / "samples.json").read_text())
    assert len(samples["ioi_prompts"]) >= 5
    assert len(samples["translations"]) >= 5
    for item in samples["translations"]:
        expected = train_tiny_models.translate_sentence(item["source"].split())
        assert (item["target"], item["alignment"]) == (expected.target, expected.alignment)


@pytest.mark.parametrize("method", ["saliency", "attention"])
def test_inseq_attributes_both_models_with_word_tokens(method: str, ioi_model, translate_model) -> None:
    """The tokenizers suit Inseq: generation round-trips the prompt, and tokens are the words."""
    import inseq

    prompt = "When Mary and John went to the store, John gave a drink to"
    causal = inseq.load_model(ioi_model.model, method, tokenizer=ioi_model.tokenizer)
    generated = causal.attribute(prompt, generation_args={"max_new_tokens": 1}, show_progress=False)
    attribution = generated.sequence_attributions[0]
    assert [t.token for t in attribution.target] == [*prompt.replace(",", " ,").split(), "Mary"]
    assert attribution.target_attributions.shape[:2] == (15, 1)

    source, target = "the old cat sees a bird quickly", "ka miru vesa mi avi rapide vidas"
    seq2seq = inseq.load_model(translate_model.model, method, tokenizer=translate_model.tokenizer)
    forced = seq2seq.attribute(source, target, show_progress=False).sequence_attributions[0]
    assert [t.token for t in forced.source] == [*source.split(), "</s>"]
    assert [t.token for t in forced.target] == ["<pad>", *target.split(), "</s>"]
    assert forced.source_attributions.shape[:2] == (8, 8)
