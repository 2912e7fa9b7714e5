"""Source and target languages of multilingual translation models, on a real NLLB tokenizer.

The model is a random M2M-100 (NLLB's architecture) saved with transformers' own ``NllbTokenizerFast``
over an in-process BPE with four language codes (``tests/support/real_tokenizers.py``), loaded through
``load_model`` like a Hub checkpoint. Ground truth: NLLB puts the source code first in the source
(``fra_Latn ▁When … </s>``) and the target code first in the target; generation forced to start with
the target code (``forced_bos_token_id``) emits it as its first token, which the random model never
does by itself.
"""

from __future__ import annotations

import json

import pytest
import torch

from attribution.anatomy.inputs import prepare_inputs
from attribution.contributions import build_contribution_graph, decompose_model
from attribution.errors import InvalidInputError
from attribution.inseq_runner import attribute
from attribution.interventions import intervene
from attribution.languages import (
    MAX_CODE_LENGTH,
    Languages,
    check_code_text,
    check_languages,
    generation_kwargs,
    language_codes,
    languages_set,
)
from attribution.models import load_model
from attribution.results import ContributionGraph, Provenance
from tests.support.model_checks import block_outputs, relative_error
from tests.support.random_models import build_random_model
from tests.support.real_tokenizers import NLLB_LANGUAGES, save_mbart50, save_nllb_m2m100

SOURCE = "When Mary and John went to the store"
TARGET = "Mary gave a drink to John"


@pytest.fixture(scope="module")
def nllb(tmp_path_factory):
    return load_model(str(save_nllb_m2m100(tmp_path_factory.mktemp("models") / "tiny-nllb", seed=0)))


def _code_id(loaded, code: str) -> int:
    return loaded.tokenizer.convert_tokens_to_ids(code)


def test_the_tokenizer_lists_its_language_codes(nllb):
    assert nllb.tokenizer.__class__.__name__.startswith("NllbTokenizer")
    assert language_codes(nllb.tokenizer) == NLLB_LANGUAGES


def test_languages_set_puts_the_codes_around_source_and_target_and_restores_the_tokenizer(nllb):
    tokenizer = nllb.tokenizer
    before = tokenizer(SOURCE)["input_ids"]
    assert before[0] == _code_id(nllb, "eng_Latn")  # the tokenizer's default source language
    languages = check_languages(nllb, Languages("fra_Latn", "deu_Latn"))
    with languages_set(nllb, languages):
        source = tokenizer(SOURCE)["input_ids"]
        target = tokenizer(text_target=TARGET)["input_ids"]
        assert generation_kwargs(nllb, languages) == {"forced_bos_token_id": _code_id(nllb, "deu_Latn")}
    assert source[0] == _code_id(nllb, "fra_Latn") and source[-1] == tokenizer.eos_token_id
    assert source[1:] == before[1:]  # only the code changed
    assert target[0] == _code_id(nllb, "deu_Latn") and target[-1] == tokenizer.eos_token_id
    assert tokenizer(SOURCE)["input_ids"] == before
    assert tokenizer.src_lang == "eng_Latn" and tokenizer.tgt_lang is None


def test_the_graph_tokenises_source_and_forced_target_with_their_codes(nllb):
    graph = build_contribution_graph(nllb, SOURCE, target=TARGET, languages=Languages("fra_Latn", "epo_Latn"), top_k=0)
    assert graph.source_tokens[0] == "fra_Latn" and graph.source_tokens[-1] == "</s>"
    assert graph.target_tokens[:2] == ["</s>", "epo_Latn"]  # decoder start, then the target code
    assert "".join(graph.target_tokens[2:]).replace("▁", " ").strip() == TARGET
    assert (graph.provenance.source_language, graph.provenance.target_language) == ("fra_Latn", "epo_Latn")
    assert nllb.tokenizer.src_lang == "eng_Latn"  # the shared tokenizer is left as it was


@pytest.mark.parametrize("code", ["deu_Latn", "epo_Latn"])
def test_generation_starts_with_the_target_language_code(nllb, code):
    plain = build_contribution_graph(nllb, SOURCE, top_k=0)
    assert plain.target_tokens[1] not in NLLB_LANGUAGES  # the random model picks no language by itself
    graph = build_contribution_graph(nllb, SOURCE, languages=Languages(target=code), top_k=0)
    assert graph.target_tokens[:2] == ["</s>", code]
    result = attribute(nllb, SOURCE, languages=Languages(target=code), max_new_tokens=4)
    assert result.target_tokens[1] == code
    # the words attributed are the forced generation's (the graph's), not the unforced one's re-tokenised
    assert result.target_tokens[1:-1] == graph.target_tokens[1 : len(result.target_tokens) - 1]
    assert result.provenance.target_language == code and result.provenance.source_language is None


def test_mbart50_sets_its_codes_and_forces_the_target_code(tmp_path_factory):
    mbart = load_model(str(save_mbart50(tmp_path_factory.mktemp("models") / "tiny-mbart50")))
    assert mbart.model_type == "mbart" and len(language_codes(mbart.tokenizer)) == 52
    graph = build_contribution_graph(mbart, SOURCE, languages=Languages("de_DE", "fr_XX"), top_k=0)
    assert graph.source_tokens[0] == "de_DE" and graph.source_tokens[-1] == "</s>"
    assert graph.target_tokens[:2] == ["</s>", "fr_XX"]  # generated, forced to start with the target code
    given = build_contribution_graph(mbart, SOURCE, target=TARGET, languages=Languages("de_DE", "ja_XX"), top_k=0)
    assert given.target_tokens[:2] == ["</s>", "ja_XX"]
    with pytest.raises(InvalidInputError, match=r"Unknown target language 'fr'.*fr_XX"):
        check_languages(mbart, Languages(target="fr"))
    assert mbart.tokenizer.src_lang == "en_XX"


def test_batched_graphs_with_languages_equal_the_graphs_built_alone(nllb):
    from attribution.contributions import build_contribution_graphs
    from tests.support.model_checks import assert_same_graph

    texts = [SOURCE, SOURCE.split()[0], f"{SOURCE} {SOURCE}"]  # different lengths: padded in one batch
    targets = [TARGET, None, TARGET]  # the second is generated, forced to start with the target code
    languages = Languages("fra_Latn", "epo_Latn")
    batched = build_contribution_graphs(nllb, texts, targets=targets, top_k=2, batch_size=3, languages=languages)
    for text, target, graph in zip(texts, targets, batched, strict=True):
        assert graph.source_tokens[0] == "fra_Latn" and graph.target_tokens[1] == "epo_Latn"
        assert graph.provenance.target_language == "epo_Latn"
        assert_same_graph(graph, build_contribution_graph(nllb, text, target=target, top_k=2, languages=languages))


def test_attribution_of_a_given_target_uses_both_codes(nllb):
    result = attribute(nllb, SOURCE, target=TARGET, languages=Languages("fra_Latn", "deu_Latn"))
    assert result.source_tokens[0] == "fra_Latn" and result.source_tokens[-1] == "</s>"
    assert result.target_tokens[1] == "deu_Latn"
    assert nllb.tokenizer.src_lang == "eng_Latn" and nllb.tokenizer.tgt_lang is None


def test_batched_attribution_keeps_the_languages_when_it_retries_input_by_input(nllb, monkeypatch):
    from attribution.inseq_runner import attribute_batch
    from tests.support.fakes import failing_inseq_calls

    failing_inseq_calls(monkeypatch, lambda batch: RuntimeError("retry one by one") if len(batch) > 1 else None)
    outcomes = attribute_batch(
        nllb, [SOURCE, TARGET], targets=[TARGET, SOURCE], languages=Languages("fra_Latn", "deu_Latn"), batch_size=2
    )
    for outcome in outcomes:
        assert outcome.source_tokens[0] == "fra_Latn" and outcome.target_tokens[1] == "deu_Latn"


def test_the_decomposition_is_exact_with_languages_set(nllb):
    languages = check_languages(nllb, Languages("fra_Latn", "deu_Latn"))
    with languages_set(nllb, languages):
        inputs = prepare_inputs(nllb, SOURCE, TARGET, None, languages)[0]
    assert inputs["input_ids"][0, 0] == _code_id(nllb, "fra_Latn")
    assert inputs["decoder_input_ids"][0, 1] == _code_id(nllb, "deu_Latn")
    expected = block_outputs(nllb, inputs)
    encoder, decoder = decompose_model(nllb, inputs)
    for side, blocks in (("encoder", encoder), ("decoder", decoder)):
        for block, model_output in zip(blocks, expected[side], strict=True):
            for attention in filter(None, (block.self_attention, block.cross_attention)):
                parts = torch.einsum("hts,hsd->td", attention.coefficients, attention.head_vectors)
                rebuilt = attention.residual + parts + attention.bias
                assert relative_error(rebuilt, attention.whole) <= 1e-5
            assert relative_error(block.ffn.residual + block.ffn.ffn + block.ffn.bias, block.ffn.whole) <= 1e-5
            assert relative_error(block.ffn.whole, model_output) <= 1e-5


def test_interventions_tokenise_with_the_languages(nllb):
    result = intervene(nllb, SOURCE, ["decoder:1:ffn:*"], target=TARGET, languages=Languages("fra_Latn", "deu_Latn"))
    assert result.source_tokens[0] == "fra_Latn" and result.target_tokens[1] == "deu_Latn"
    assert result.provenance.target_language == "deu_Latn"
    generated = intervene(
        nllb, SOURCE, ["decoder:1:ffn:*"], languages=Languages(target="epo_Latn")
    )  # the target is generated
    assert generated.target_tokens[1] == "epo_Latn" and generated.source_tokens[0] == "eng_Latn"


def test_a_route_test_takes_the_given_graphs_languages_for_the_codes_not_given(nllb):
    from attribution.interventions.routes import route_faithfulness

    languages = Languages("fra_Latn", "deu_Latn")
    # the random model's routes keep attention edges only at a tiny threshold (and not all of them: 0.0005)
    graph = build_contribution_graph(nllb, SOURCE, target=TARGET, languages=languages, threshold=0.0005, top_k=0)
    route = route_faithfulness(nllb, SOURCE, graph=graph, seeds=1)
    assert (route.provenance.source_language, route.provenance.target_language) == ("fra_Latn", "deu_Latn")
    target_given = route_faithfulness(nllb, SOURCE, graph=graph, seeds=1, languages=Languages(target="epo_Latn"))
    assert (target_given.provenance.source_language, target_given.provenance.target_language) == (
        "fra_Latn",
        "epo_Latn",
    )


def test_unknown_codes_are_refused_naming_valid_ones(nllb):
    with pytest.raises(InvalidInputError, match=r"Unknown target language 'deu_Latm'.*4 language codes.*deu_Latn"):
        build_contribution_graph(nllb, SOURCE, languages=Languages(target="deu_Latm"))
    with pytest.raises(InvalidInputError, match=r"Unknown source language 'xx'.*eng_Latn"):
        attribute(nllb, SOURCE, languages=Languages("xx"))
    assert nllb.tokenizer.src_lang == "eng_Latn"


@pytest.mark.parametrize("code", ["a" * (MAX_CODE_LENGTH + 1), "eng Latn", "<script>", "en\n"])
def test_malformed_codes_are_refused_before_any_model(code):
    if code == "en\n":
        assert check_code_text(code, role="source language") == "en"  # surrounding whitespace is stripped
        return
    with pytest.raises(InvalidInputError, match="is not a language code"):
        check_code_text(code, role="source language")


def test_models_without_language_codes_refuse_languages():
    with pytest.raises(InvalidInputError, match=r"takes plain text.*translate English to German"):
        check_languages(build_random_model("mt5", random_biases=False), Languages("en"))
    with pytest.raises(InvalidInputError, match="has no language codes"):
        build_contribution_graph(
            build_random_model("marian", random_biases=False), "a b", languages=Languages(target="deu_Latn")
        )
    with pytest.raises(InvalidInputError, match="causal language model"):
        attribute(build_random_model("gpt2", random_biases=False), "a b", languages=Languages("eng_Latn"))
    assert not check_languages(build_random_model("marian", random_biases=False), Languages(" ", ""))  # empty: not set


def test_results_keep_their_languages_and_old_json_still_loads(nllb):
    graph = build_contribution_graph(nllb, SOURCE, target=TARGET, languages=Languages("fra_Latn", "deu_Latn"), top_k=0)
    again = ContributionGraph.from_json(graph.to_json())
    assert (again.provenance.source_language, again.provenance.target_language) == ("fra_Latn", "deu_Latn")
    old = graph.to_dict()["provenance"]
    del old["source_language"], old["target_language"]
    assert Provenance.from_dict(old).target_language is None
    assert Languages() == check_languages(nllb)


# ------------------------------------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def nllb_folder(nllb):
    return nllb.model_id  # the local folder the fixture saved


@pytest.mark.parametrize("command", ["attribute", "graph", "intervene"])
def test_cli_commands_take_the_languages(nllb_folder, tmp_path, command):
    from space.cli import main

    out = tmp_path / f"{command}.json"
    extra = ["--component", "decoder:1:ffn:*"] if command == "intervene" else []
    argv = [command, "--model", nllb_folder, "--text", SOURCE, "--src-lang", "fra_Latn", "--tgt-lang", "epo_Latn"]
    assert main([*argv, *extra, "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["source_tokens"][0] == "fra_Latn" and data["target_tokens"][1] == "epo_Latn"  # generated target
    assert data["provenance"]["source_language"] == "fra_Latn"
    assert data["provenance"]["target_language"] == "epo_Latn"


def test_cli_refuses_a_malformed_code_before_loading_a_model(tmp_path, capsys):
    from space.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["graph", "--model", str(tmp_path / "no-such-model"), "--text", "a", "--tgt-lang", "<b>x", "--out", "g"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--tgt-lang" in error and "is not a language code" in error and "no-such-model" not in error


def test_cli_refuses_an_unknown_code_with_one_line(nllb_folder, tmp_path, capsys):
    from space.cli import main

    out = tmp_path / "g.json"
    assert main(["graph", "--model", nllb_folder, "--text", SOURCE, "--tgt-lang", "deu", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("error: Unknown target language 'deu'") and "deu_Latn" in error[-1]
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ the Space


@pytest.fixture(scope="module")
def ctx(nllb_folder):
    from attribution.models import ModelCache
    from space.gradio_app.config import SpaceConfig
    from tests.support.app_context import offline_context

    config = SpaceConfig(models=(nllb_folder,), default_model=nllb_folder, max_new_tokens=4, methods=("saliency",))
    return offline_context(config, cache=ModelCache(max_models=1))


def test_the_attribute_and_graph_handlers_take_the_languages(ctx, nllb_folder):
    from space.gradio_app.tabs import attribute as attribute_tab
    from space.gradio_app.tabs import graph as graph_tab

    view = attribute_tab.run_attribution(ctx, nllb_folder, SOURCE, "", "saliency", [], "", " fra_Latn ", "deu_Latn")
    assert view.result.source_tokens[0] == "fra_Latn" and view.result.target_tokens[1] == "deu_Latn"
    assert json.loads(view.result_json)["provenance"]["target_language"] == "deu_Latn"
    graph = graph_tab.run_graph(ctx, nllb_folder, SOURCE, TARGET, 0.04, False, "-1", "fra_Latn", "epo_Latn").graph
    assert graph.source_tokens[0] == "fra_Latn" and graph.target_tokens[1] == "epo_Latn"
    plain = graph_tab.run_graph(ctx, nllb_folder, SOURCE, TARGET, 0.04, False, "-1").graph  # old call: no languages
    assert plain.source_tokens[0] == "eng_Latn" and plain.target_tokens[1] == "eng_Latn"  # the tokenizer's default


def test_the_threshold_rewalks_only_a_graph_of_the_same_languages(ctx, nllb_folder, monkeypatch):
    from space.gradio_app.tabs import graph as graph_tab

    shown = graph_tab.run_graph(ctx, nllb_folder, SOURCE, TARGET, 0.02, False, "-1", "fra_Latn", "deu_Latn")
    args = (ctx, nllb_folder, SOURCE, TARGET, 0.1, False, "-1", shown.graph_json)
    with monkeypatch.context() as patched:
        patched.setattr(graph_tab, "run_graph", lambda *a, **k: pytest.fail("recomputed instead of re-walked"))
        rewalked = graph_tab.rethreshold_graph(*args, "fra_Latn", "deu_Latn").graph
    assert rewalked.threshold == 0.1 and rewalked.provenance.target_language == "deu_Latn"
    recomputed = graph_tab.rethreshold_graph(*args, "fra_Latn", "epo_Latn").graph
    assert recomputed.target_tokens[1] == "epo_Latn" and recomputed.provenance.target_language == "epo_Latn"


@pytest.mark.parametrize(
    ("src_lang", "tgt_lang", "message"),
    [
        ("x" * 10_000, "", "is not a language code"),  # untrusted and unbounded: refused, shown cut short
        ("", "deu_Latm", "Unknown target language 'deu_Latm'"),
    ],
)
def test_the_handlers_refuse_bad_codes_clearly(ctx, nllb_folder, src_lang, tgt_lang, message):
    from space.gradio_app.tabs import attribute as attribute_tab
    from space.gradio_app.tabs import graph as graph_tab

    with pytest.raises(InvalidInputError, match=message) as error:
        graph_tab.run_graph(ctx, nllb_folder, SOURCE, "", 0.04, False, "-1", src_lang, tgt_lang)
    assert len(str(error.value)) < 300
    with pytest.raises(InvalidInputError, match=message):
        attribute_tab.run_attribution(ctx, nllb_folder, SOURCE, "", "saliency", [], "", src_lang, tgt_lang)


def test_an_exported_page_states_the_languages(nllb):
    from exporters.page import provenance_html, provenance_record

    graph = build_contribution_graph(nllb, SOURCE, target=TARGET, languages=Languages(target="deu_Latn"), top_k=0)
    header = provenance_html("graph", provenance_record(graph))
    assert "<ae-key>languages</ae-key><ae-value>default → deu_Latn</ae-value>" in header
    plain = build_contribution_graph(nllb, SOURCE, target=TARGET, top_k=0)
    assert "languages" not in provenance_html("graph", provenance_record(plain))


def test_corpus_runs_take_the_languages_and_keep_old_manifests(nllb):
    from attribution.corpus.records import Record
    from attribution.corpus.tasks import TaskConfig, run_records

    config = TaskConfig(methods=("saliency", "graph"), metrics=(), languages=Languages("fra_Latn", "epo_Latn"))
    assert TaskConfig.from_dict(config.to_dict()) == config
    plain = TaskConfig(methods=("saliency",), metrics=()).to_dict()
    assert "src_lang" not in plain and TaskConfig.from_dict(plain).languages == Languages()  # older manifests
    [[saliency, graph]] = run_records(nllb, [Record("r0", 0, SOURCE)], config)
    assert saliency.status == graph.status == "ok", (saliency.error, graph.error)
    for outcome in (saliency, graph):
        assert outcome.result.source_tokens[0] == "fra_Latn" and outcome.result.target_tokens[1] == "epo_Latn"
        assert outcome.result.provenance.target_language == "epo_Latn"
    with pytest.raises(InvalidInputError, match="is not a language code"):
        TaskConfig(methods=("saliency",), languages=Languages(target="<x>"))


def test_the_corpus_command_takes_the_languages(nllb_folder, tmp_path):
    from attribution.corpus.runfolder import load_run
    from space.cli import main

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"source": SOURCE}) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    argv = ["corpus", "--model", nllb_folder, "--methods", "graph", "--data", str(data), "--out", str(run_dir)]
    assert main([*argv, "--src-lang", "fra_Latn", "--tgt-lang", "epo_Latn"]) == 0
    run = load_run(run_dir)
    assert run.task.languages == Languages("fra_Latn", "epo_Latn")
    [row] = run.rows
    assert row["status"] == "ok", row
    graph = ContributionGraph.from_json((run_dir / row["result_file"]).read_text(encoding="utf-8"))
    assert graph.source_tokens[0] == "fra_Latn" and graph.target_tokens[1] == "epo_Latn"


def test_the_compare_handler_applies_the_languages_to_every_run(ctx, nllb_folder):
    from space.gradio_app.tabs import compare as compare_tab

    view = compare_tab.run_comparison(ctx, SOURCE, [nllb_folder], ["saliency"], "", "", "fra_Latn", "epo_Latn")
    [result] = view.comparison.results
    assert result.source_tokens[0] == "fra_Latn" and result.target_tokens[1] == "epo_Latn"
    with pytest.raises(InvalidInputError, match="Unknown source language 'fr'"):
        compare_tab.run_comparison(ctx, SOURCE, [nllb_folder], ["saliency"], "", "", "fr", "")
