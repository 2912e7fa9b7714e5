"""Train the two tiny models bundled in ``examples/models``, whose mechanisms we know.

Attribution and information-flow methods need models whose "right explanation" is known in
advance, so tests can check the explanations against ground truth and the app works offline.
Both models are trained from scratch here on synthetic data generated from a seeded RNG, with a
word-level tokenizer (one token per word, so token positions are word positions).

``tiny-ioi-gpt2`` (GPT2LMHeadModel: 4 layers, d_model 128, 4 heads, 77-word vocabulary)
    Indirect-object identification (IOI, Wang et al. 2022): "When Mary and John went to the store,
    John gave a drink to" -> "Mary". Two names appear in a first clause; one of them (the subject)
    is repeated; the answer is the other one (the indirect object). Seven sentence templates
    ("When ...", "Then, ... had a lot of fun ...", "After ... handed ...", ...), twelve places,
    twelve objects, twenty names, the subject named first or second. The answer can only come from copying the
    non-repeated name, so an explanation of the prediction should point at the indirect object's
    first mention (and the route from the prediction should reach it). Name PAIRS are held out:
    the test set uses pairs of names never seen together in training (each name itself is seen).
    Objective: next-token LM loss over the whole sentence, plus the loss of the answer token
    again (the answer is the only deterministic next token, and this makes it learnt quickly).
    The tokenizer adds no ``<s>`` (GPT-2 convention; see :func:`build_word_tokenizer` for why).

``tiny-synth-translate`` (MarianMTModel: 2+2 layers, d_model 128, 4 heads, 94-word shared vocabulary)
    A synthetic English -> "Lexish" translation task with a fixed lexicon of 45 words (4
    determiners, 10 adjectives, 16 nouns, 10 transitive verbs, 5 adverbs), each translated by
    exactly one invented target word, so the gold word alignment of every pair is exact and known.
    Source grammar: ``DET ADJ{0,2} NOUN VERB DET ADJ{0,2} NOUN [ADV]``. Three reordering rules:

    1. adjective-noun swap: adjectives follow their noun, in mirror order
       ("the big red dog" -> "ka kano rubi grano");
    2. verb-final: subject-verb-object becomes subject-object-verb;
    3. the adverb moves to just before the (final) verb.

    Example: "the old cat sees a bird quickly" -> "ka miru vesa mi avi rapide vidas",
    alignment "0-0 1-2 2-1 3-6 4-3 5-4 6-5" (Pharaoh ``src-tgt``, 0-based word indices).
    Test sentences never occur in training.

Usage::

    python examples/train_tiny_models.py [--only ioi|translate] [--out examples/models]

It writes ``model.safetensors``, ``config.json``, ``generation_config.json``, ``tokenizer.json``
and ``tokenizer_config.json`` per model (loadable with ``from_pretrained(path)``), the held-out
test sets to ``examples/data/``, and prints the held-out accuracy. Training is deterministic
(fixed seeds, deterministic torch algorithms, one CPU thread by default: two runs give
byte-identical weights for a given torch build and thread count) and takes about 4 to 15 minutes
per model on one thread, depending on how busy the machine is. Importing this module has
no side effects: tests call its data generators.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

EXAMPLES_DIR = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = EXAMPLES_DIR / "models"
DATA_DIR = EXAMPLES_DIR / "data"
IOI_MODEL_NAME = "tiny-ioi-gpt2"
TRANSLATE_MODEL_NAME = "tiny-synth-translate"

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
SEED = 1234

# ---------------------------------------------------------------------------------------------
# Indirect-object identification data
# ---------------------------------------------------------------------------------------------

IOI_NAMES = (
    "Mary",
    "John",
    "Alice",
    "Bob",
    "Sarah",
    "Tom",
    "Emma",
    "James",
    "Lisa",
    "David",
    "Anna",
    "Paul",
    "Kate",
    "Mark",
    "Laura",
    "Peter",
    "Julia",
    "Simon",
    "Rachel",
    "Daniel",
)
IOI_PLACES = (
    "store",
    "garden",
    "park",
    "school",
    "office",
    "restaurant",
    "hospital",
    "station",
    "library",
    "beach",
    "market",
    "museum",
)
IOI_OBJECTS = (
    "drink",
    "book",
    "ring",
    "snack",
    "bottle",
    "letter",
    "flower",
    "ball",
    "key",
    "gift",
    "bag",
    "cake",
)
#: Prompts end right before the indirect object; {A} and {B} are the first clause's names, {S} the repeated subject.
IOI_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {object} to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give it to",
    "Then, {A} and {B} went to the {place}. {S} gave a {object} to",
    "Then, {A} and {B} had a lot of fun at the {place}. {S} gave a {object} to",
    "After {A} and {B} spent the day at the {place}, {S} handed a {object} to",
    "While {A} and {B} were working at the {place}, {S} brought a {object} to",
    "Friends {A} and {B} found a {object} at the {place}. {S} gave it to",
)
IOI_HELD_OUT_PAIRS = 30
IOI_TRAIN_SIZE = 40_000
IOI_TEST_SIZE = 300
#: Training schedule of the IOI model (steps of ``batch_size`` sentences) and its depth.
IOI_TRAINING = {"steps": 2000, "batch_size": 64, "learning_rate": 1e-3}
IOI_LAYERS = 4


@dataclass(frozen=True)
class IOIExample:
    """One IOI prompt; ``answer`` (= ``io``) is the name the model must predict next."""

    prompt: str
    answer: str
    subject: str
    io: str
    template: int

    @property
    def sentence(self) -> str:
        return f"{self.prompt} {self.answer}."


def ioi_name_pairs(seed: int = SEED) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split all unordered name pairs into (training pairs, held-out test pairs)."""
    pairs = list(itertools.combinations(IOI_NAMES, 2))
    random.Random(seed).shuffle(pairs)
    return pairs[IOI_HELD_OUT_PAIRS:], pairs[:IOI_HELD_OUT_PAIRS]


def _ioi_example(rng: random.Random, pair: tuple[str, str]) -> IOIExample:
    subject, io = rng.sample(pair, 2)
    first, second = (subject, io) if rng.random() < 0.5 else (io, subject)
    template = rng.randrange(len(IOI_TEMPLATES))
    prompt = IOI_TEMPLATES[template].format(
        A=first, B=second, S=subject, place=rng.choice(IOI_PLACES), object=rng.choice(IOI_OBJECTS)
    )
    return IOIExample(prompt=prompt, answer=io, subject=subject, io=io, template=template)


def generate_ioi_data(seed: int = SEED) -> tuple[list[IOIExample], list[IOIExample]]:
    """(training examples, held-out test examples); test items only use held-out name pairs."""
    train_pairs, test_pairs = ioi_name_pairs(seed)
    rng = random.Random(seed + 1)
    train = [_ioi_example(rng, rng.choice(train_pairs)) for _ in range(IOI_TRAIN_SIZE)]
    test_rng = random.Random(seed + 2)
    test: dict[str, IOIExample] = {}
    while len(test) < IOI_TEST_SIZE:
        example = _ioi_example(test_rng, test_pairs[len(test) % len(test_pairs)])
        test.setdefault(example.prompt, example)
    return train, list(test.values())


def ioi_vocabulary() -> list[str]:
    """Every word and punctuation mark the IOI sentences use, after the special tokens."""
    blanks = {"A": "", "B": "", "S": "", "place": "", "object": ""}
    words = {w for template in IOI_TEMPLATES for w in pre_tokenize(template.format(**blanks))}
    return [*SPECIAL_TOKENS, *sorted(words | {"."}), *IOI_NAMES, *IOI_PLACES, *IOI_OBJECTS]


def pre_tokenize(text: str) -> list[str]:
    """Split text into words and punctuation marks, as the word-level tokenizers do."""
    return [piece for piece, _ in pre_tokenizers.Whitespace().pre_tokenize_str(text)]


# ---------------------------------------------------------------------------------------------
# Synthetic translation data
# ---------------------------------------------------------------------------------------------

DETERMINERS = {"the": "ka", "a": "mi", "this": "tesu", "every": "olo"}
ADJECTIVES = {
    "red": "rubi",
    "big": "grano",
    "small": "piko",
    "old": "vesa",
    "young": "nuvi",
    "happy": "felo",
    "green": "virda",
    "quiet": "tasi",
    "brave": "koru",
    "tired": "lasu",
}
NOUNS = {
    "cat": "miru",
    "dog": "kano",
    "man": "viro",
    "woman": "fema",
    "child": "beko",
    "bird": "avi",
    "horse": "ekvo",
    "teacher": "dosa",
    "farmer": "agro",
    "king": "regu",
    "girl": "pura",
    "boy": "zeno",
    "fish": "piso",
    "friend": "amiko",
    "doctor": "medo",
    "baker": "pano",
}
VERBS = {
    "sees": "vidas",
    "likes": "amas",
    "finds": "trovas",
    "follows": "sekvas",
    "helps": "helpas",
    "watches": "gardas",
    "calls": "vokas",
    "chases": "casas",
    "greets": "salas",
    "pushes": "pusas",
}
ADVERBS = {"quickly": "rapide", "slowly": "lante", "often": "ofte", "quietly": "kviete", "today": "hodie"}
LEXICON = {**DETERMINERS, **ADJECTIVES, **NOUNS, **VERBS, **ADVERBS}
TRANSLATE_TRAIN_SIZE = 30_000
TRANSLATE_TEST_SIZE = 300
TRANSLATE_TRAINING = {"steps": 3000, "batch_size": 64, "learning_rate": 1e-3}


@dataclass(frozen=True)
class TranslationPair:
    """A source sentence, its translation and the gold Pharaoh alignment ("src-tgt" word indices)."""

    source: str
    target: str
    alignment: str


def _noun_phrase(rng: random.Random) -> list[str]:
    n_adjectives = rng.choices((0, 1, 2), weights=(4, 4, 2))[0]
    adjectives = rng.sample(sorted(ADJECTIVES), n_adjectives)
    return [rng.choice(sorted(DETERMINERS)), *adjectives, rng.choice(sorted(NOUNS))]


def translate_sentence(source_words: list[str]) -> TranslationPair:
    """Translate a grammatical source sentence by the lexicon and the three reordering rules."""
    verb_index = next(i for i, w in enumerate(source_words) if w in VERBS)
    has_adverb = source_words[-1] in ADVERBS
    object_end = len(source_words) - 1 if has_adverb else len(source_words)

    def reorder_noun_phrase(start: int, end: int) -> list[int]:
        # DET ADJ1 ADJ2 NOUN -> DET NOUN ADJ2 ADJ1
        return [start, end - 1, *range(end - 2, start, -1)]

    order = [*reorder_noun_phrase(0, verb_index), *reorder_noun_phrase(verb_index + 1, object_end)]
    if has_adverb:
        order.append(len(source_words) - 1)
    order.append(verb_index)
    target = [LEXICON[source_words[i]] for i in order]
    alignment = " ".join(f"{src}-{tgt}" for src, tgt in sorted((s, t) for t, s in enumerate(order)))
    return TranslationPair(source=" ".join(source_words), target=" ".join(target), alignment=alignment)


def _random_source_sentence(rng: random.Random) -> list[str]:
    words = [*_noun_phrase(rng), rng.choice(sorted(VERBS)), *_noun_phrase(rng)]
    if rng.random() < 0.5:
        words.append(rng.choice(sorted(ADVERBS)))
    return words


def generate_translation_data(seed: int = SEED) -> tuple[list[TranslationPair], list[TranslationPair]]:
    """(training pairs, held-out test pairs): distinct sentences, none of the test ones in training."""
    rng = random.Random(seed + 3)
    seen: dict[str, TranslationPair] = {}
    while len(seen) < TRANSLATE_TEST_SIZE + TRANSLATE_TRAIN_SIZE:
        pair = translate_sentence(_random_source_sentence(rng))
        seen.setdefault(pair.source, pair)
    pairs = list(seen.values())
    return pairs[TRANSLATE_TEST_SIZE:], pairs[:TRANSLATE_TEST_SIZE]


def translation_vocabulary() -> list[str]:
    return [*SPECIAL_TOKENS, *LEXICON, *LEXICON.values()]


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


def build_word_tokenizer(vocabulary: list[str], *, append_eos: bool) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: words and punctuation marks are tokens; decode joins them with spaces.

    The decoder glues punctuation back to the previous word ("store , John" -> "store, John"), so
    decoding a tokenized prompt gives the prompt back: Inseq checks that a decoder-only model's
    generation, decoded with special tokens kept, starts with the prompt text. That is also why the
    causal tokenizer adds no ``<s>`` (GPT-2 convention); seq2seq encoders get ``</s>`` appended
    (Marian convention), and so do targets (``tokenizer(text_target=...)``).
    """
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(vocabulary)}, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    if append_eos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", pair=f"$A {EOS} $B:1 {EOS}:1", special_tokens=[(EOS, EOS_ID)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=64,
        clean_up_tokenization_spaces=True,
    )


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def make_deterministic(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    return torch.tensor([s + [value] * (width - len(s)) for s in sequences])


def _batches(n_items: int, batch_size: int, steps: int, seed: int) -> Iterator[list[int]]:
    """``steps`` batches of indices, reshuffled every epoch by a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    step = 0
    while True:
        order = torch.randperm(n_items, generator=generator).tolist()
        for start in range(0, n_items - batch_size + 1, batch_size):
            if step == steps:
                return
            yield order[start : start + batch_size]
            step += 1


def _train(
    model: PreTrainedModel,
    loss_of_batch: Callable[[list[int]], torch.Tensor],
    *,
    n_items: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> None:
    """AdamW with linear warm-up and linear decay; prints the loss now and then."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup)))
    )
    model.train()
    started = time.perf_counter()
    for step, batch in enumerate(_batches(n_items, batch_size, steps, seed)):
        loss = loss_of_batch(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == steps - 1:
            elapsed = time.perf_counter() - started
            print(f"[{type(model).__name__}] step {step:5d}/{steps} loss {loss.item():.4f} ({elapsed:.0f} s)")
    model.eval()


def ioi_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, examples: list[IOIExample]) -> float:
    """Share of prompts whose argmax next token is the indirect object (right padding, batched)."""
    encoded = tokenizer([e.prompt for e in examples], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits
    last = encoded["attention_mask"].sum(dim=1) - 1
    predicted = logits[torch.arange(len(examples)), last].argmax(dim=-1)
    expected = torch.tensor(tokenizer.convert_tokens_to_ids([e.io for e in examples]))
    return (predicted == expected).float().mean().item()


def translation_accuracy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs: list[TranslationPair]
) -> float:
    """Exact-match rate of batched greedy generation against the gold targets."""
    encoded = tokenizer([p.source for p in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**encoded, num_beams=1, do_sample=False, max_new_tokens=16)
    outputs = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return sum(out.strip() == p.target for out, p in zip(outputs, pairs, strict=True)) / len(pairs)


def train_ioi(out_dir: Path, *, threads: int, seed: int = SEED) -> float:
    make_deterministic(seed, threads)
    train, test = generate_ioi_data(seed)
    tokenizer = build_word_tokenizer(ioi_vocabulary(), append_eos=False)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=128,
        n_layer=IOI_LAYERS,
        n_head=4,
        n_inner=512,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        tokenizer_class="PreTrainedTokenizerFast",
    )
    model = GPT2LMHeadModel(config)
    sequences = [tokenizer(e.sentence)["input_ids"] + [EOS_ID] for e in train]
    answer_positions = [len(s) - 4 for s in sequences]  # ... to IO . </s>: logits at "to" predict IO

    def loss_of_batch(batch: list[int]) -> torch.Tensor:
        input_ids = _pad([sequences[i] for i in batch], PAD_ID)
        attention_mask = input_ids.ne(PAD_ID).long()
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        positions = torch.tensor([answer_positions[i] for i in batch])
        rows = torch.arange(len(batch))
        answer_loss = torch.nn.functional.cross_entropy(output.logits[rows, positions], input_ids[rows, positions + 1])
        return output.loss + answer_loss

    _train(model, loss_of_batch, n_items=len(train), seed=seed, **IOI_TRAINING)
    accuracy = ioi_accuracy(model, tokenizer, test)
    _save(model, tokenizer, out_dir / IOI_MODEL_NAME)
    _write_jsonl(DATA_DIR / "ioi_test.jsonl", [asdict(e) for e in test])
    return accuracy


def train_translate(out_dir: Path, *, threads: int, seed: int = SEED) -> float:
    make_deterministic(seed, threads)
    train, test = generate_translation_data(seed)
    tokenizer = build_word_tokenizer(translation_vocabulary(), append_eos=True)
    config = MarianConfig(
        vocab_size=len(tokenizer),
        decoder_vocab_size=len(tokenizer),
        d_model=128,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=256,
        decoder_ffn_dim=256,
        max_position_embeddings=64,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        bos_token_id=BOS_ID,
        decoder_start_token_id=PAD_ID,
        forced_eos_token_id=EOS_ID,
        share_encoder_decoder_embeddings=True,
        tokenizer_class="PreTrainedTokenizerFast",
    )
    model = MarianMTModel(config)
    sources = [tokenizer(p.source)["input_ids"] for p in train]
    targets = [tokenizer(text_target=p.target)["input_ids"] for p in train]

    def loss_of_batch(batch: list[int]) -> torch.Tensor:
        input_ids = _pad([sources[i] for i in batch], PAD_ID)
        labels = _pad([targets[i] for i in batch], -100)
        return model(input_ids=input_ids, attention_mask=input_ids.ne(PAD_ID).long(), labels=labels).loss

    _train(model, loss_of_batch, n_items=len(train), seed=seed, **TRANSLATE_TRAINING)
    accuracy = translation_accuracy(model, tokenizer, test)
    _save(model, tokenizer, out_dir / TRANSLATE_MODEL_NAME)
    _write_jsonl(DATA_DIR / "synth_translate_test.jsonl", [asdict(p) for p in test])
    return accuracy


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    model.generation_config.pad_token_id = PAD_ID
    model.generation_config.eos_token_id = EOS_ID
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_samples(path: Path, seed: int = SEED) -> None:
    """Sample inputs for the app and the docs: held-out IOI prompts (one per template) and translations."""
    _, ioi_test = generate_ioi_data(seed)
    _, translate_test = generate_translation_data(seed)
    first_per_template = {e.template: e.prompt for e in reversed(ioi_test)}
    samples = {
        "ioi_prompts": [first_per_template[t] for t in sorted(first_per_template)][:5],
        "translations": [asdict(p) for p in translate_test[:5]],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(samples, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("ioi", "translate"), help="train one model only")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR, help="folder for the model folders")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (results are reproducible per count)")
    args = parser.parse_args(argv)
    write_samples(DATA_DIR / "samples.json")
    results = {}
    if args.only in (None, "ioi"):
        started = time.perf_counter()
        results[IOI_MODEL_NAME] = (train_ioi(args.out, threads=args.threads), time.perf_counter() - started)
    if args.only in (None, "translate"):
        started = time.perf_counter()
        results[TRANSLATE_MODEL_NAME] = (train_translate(args.out, threads=args.threads), time.perf_counter() - started)
    for name, (accuracy, seconds) in results.items():
        print(f"{name}: held-out accuracy {accuracy:.3f} (trained in {seconds:.0f} s)")


if __name__ == "__main__":
    main()
