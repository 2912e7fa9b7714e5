"""Contribution graph on random-initialised models of every supported family (random non-zero biases).

Ground truth: the model's own block outputs (the decomposition must sum back to them), the
loop-based reference in ``tests/support/contributions_reference.py``, and the definitions (shares >= 0,
summing to 1 per node; routes keep only edges >= threshold).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, BloomConfig, GPTJConfig

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.inputs import prepare_inputs
from attribution.contributions import SUPPORTED_MODEL_TYPES, build_contribution_graph, decompose_model
from attribution.contributions.decompose import attention_shares, ffn_shares, neuron_scores, run_instrumented
from attribution.contributions.routes import trace_routes
from attribution.errors import InvalidInputError, UnsupportedError
from attribution.models import LoadedModel
from attribution.results import ContributionGraph, load_result_file
from space.cli import main
from tests.support import texts
from tests.support.contributions_reference import ReferenceStack, reference_route
from tests.support.model_checks import block_outputs, relative_error
from tests.support.random_models import (
    BART_FAMILIES,
    build_never_ending_model,
    build_random_model,
    word_level_tokenizer,
)

PROMPT = texts.RANDOM_PROMPT
SOURCE = texts.RANDOM_SOURCE
TARGET = texts.RANDOM_TARGET


#: ``family_model`` (tests/attribution/conftest.py): every family and layout, built with this seed.
FAMILY_SEED = 3
LOUDER_FAMILIES = BART_FAMILIES


def _inputs(loaded: LoadedModel, text: str | None = None, target: str | None = None):
    if loaded.kind == "seq2seq":
        return prepare_inputs(loaded, text or SOURCE, target or TARGET, None)[0]
    return prepare_inputs(loaded, text or PROMPT, None, None)[0]


def test_decomposition_reconstructs_the_models_hidden_states(family_model):
    inputs = _inputs(family_model)
    expected = block_outputs(family_model, inputs)
    encoder, decoder = decompose_model(family_model, inputs)
    for side, blocks in (("encoder", encoder), ("decoder", decoder)):
        assert len(blocks) == len(expected[side])
        for block, model_output in zip(blocks, expected[side], strict=True):
            for attention in filter(None, (block.self_attention, block.cross_attention)):
                parts = torch.einsum("hts,hsd->td", attention.coefficients, attention.head_vectors)
                rebuilt = attention.residual + parts + attention.bias
                assert relative_error(rebuilt, attention.whole) <= 1e-5
            ffn = block.ffn
            assert relative_error(ffn.residual + ffn.ffn + ffn.bias, ffn.whole) <= 1e-5
            assert relative_error(ffn.whole, model_output) <= 1e-5
    # the first block's residual input is the embedding: the graph's layer-0 nodes
    assert decoder[0].residual_in.shape[0] == inputs.get("decoder_input_ids", inputs["input_ids"]).shape[1]


def test_attention_specs_name_the_attention_module_and_its_output_projection(family_model):
    """Interventions rely on this: the attention module returns (output after the projection, probabilities);
    where the module adds the residual itself (BLOOM, ``output_includes_residual``) its output is the block's
    input plus the projection's output."""
    spec = architecture_spec(family_model.model)
    inputs = _inputs(family_model)
    for block in [*spec.encoder_blocks, *spec.decoder_blocks]:
        for attention in filter(None, (block.self_attention, block.cross_attention)):
            seen: dict[str, object] = {}
            handles = [
                block.module.register_forward_pre_hook(
                    lambda _m, args, kwargs, seen=seen: seen.update(
                        block_in=args[0] if args else kwargs["hidden_states"]
                    ),
                    with_kwargs=True,
                ),
                attention.module.register_forward_hook(lambda _m, _a, out, seen=seen: seen.setdefault("module", out)),
                attention.out_module.register_forward_hook(
                    lambda _m, args, out, seen=seen: seen.update(projection_in=args[0], projection_out=out)
                ),
            ]
            with torch.no_grad():
                family_model.model(**inputs, use_cache=False, output_attentions=True)
            for handle in handles:
                handle.remove()
            output, probabilities = seen["module"][0], seen["module"][attention.probabilities_index]
            if attention.output_includes_residual:
                torch.testing.assert_close(output, seen["block_in"] + seen["projection_out"], atol=1e-6, rtol=0)
            else:
                assert torch.equal(output, seen["projection_out"])
            assert probabilities.shape[1] == attention.n_heads
            # probabilities, not another [batch, H, T, S] tensor (T5 also returns its position bias)
            assert torch.allclose(probabilities.sum(-1), torch.ones(()), atol=1e-5) and probabilities.min() >= 0
            assert seen["projection_in"].shape[-1] == attention.out_weight.shape[0] * attention.out_weight.shape[1]


def test_parallel_residual_flag_matches_the_model(family_model):
    """The graph draws the FFN's input from the block input (parallel) or from after attention (sequential):
    changing the first block's attention output must leave its FFN output alone exactly when parallel."""
    spec = architecture_spec(family_model.model)
    block = spec.decoder_blocks[0]
    inputs = _inputs(family_model)

    def ffn_output(scale: float) -> torch.Tensor:
        seen = {}
        handles = [
            block.self_attention.out_module.register_forward_hook(lambda _m, _a, out: out * scale),
            block.ffn.out_module.register_forward_hook(lambda _m, _a, out: seen.update(out=out.clone())),
        ]
        with torch.no_grad():
            family_model.model(**inputs, use_cache=False)
        for handle in handles:
            handle.remove()
        return seen["out"]

    changed = not torch.equal(ffn_output(1.0), ffn_output(3.0))
    assert block.parallel_residual is (not changed)  # a bool: the routes branch on it


def test_neuron_scores_read_the_ffn_output_as_the_block_adds_it(family_model):
    """``activations @ out_weight`` is the FFN output up to its (position-independent) bias, in the frame the
    block adds it in (a branch norm's gain included), so the neuron scores plus the bias's share sum to 1."""
    spec = architecture_spec(family_model.model)
    encoder, decoder = decompose_model(family_model, _inputs(family_model))
    for block, block_spec in zip([*encoder, *decoder], [*spec.encoder_blocks, *spec.decoder_blocks], strict=True):
        ffn = block.ffn
        bias = ffn.raw_output - ffn.activations @ ffn.out_weight  # [T, d]: the same row at every position
        torch.testing.assert_close(bias, bias[:1].expand_as(bias), atol=1e-4, rtol=0)
        bias_share = (ffn.raw_output @ bias[0]) / ffn.raw_output.pow(2).sum(-1)
        total = neuron_scores(ffn, torch.arange(ffn.raw_output.shape[0])).sum(-1) + bias_share
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-4, rtol=0)
        if block_spec.ffn.post_norm is None:  # the scores' direction is the FFN part's (a branch RMSNorm rescales it)
            cosine = torch.nn.functional.cosine_similarity(ffn.raw_output, ffn.ffn)
            torch.testing.assert_close(cosine, torch.ones_like(cosine), atol=1e-5, rtol=0)


def test_shares_are_non_negative_sum_to_one_and_match_the_loop_reference(family_model):
    inputs = _inputs(family_model)
    spec = architecture_spec(family_model.model)
    encoder_captured, decoder_captured = run_instrumented(family_model.model, spec, inputs)
    encoder, decoder = decompose_model(family_model, inputs)
    for captured, specs, blocks in (
        (encoder_captured, spec.encoder_blocks, encoder),
        (decoder_captured, spec.decoder_blocks, decoder),
    ):
        reference = ReferenceStack(captured, specs)
        for block, expected in zip(blocks, reference.layers, strict=True):
            rows = torch.arange(block.residual_in.shape[0])
            attentions = [("self", block.self_attention), ("cross", block.cross_attention)]
            for name, attention in attentions:
                if attention is None:
                    continue
                # a tiny budget forces many chunks (rows and sources) through the chunked path
                residual_share, part_share = attention_shares(attention, rows, budget=100)
                assert residual_share.min() >= 0 and part_share.min() >= 0
                totals = residual_share + part_share.sum((1, 2))
                torch.testing.assert_close(totals, torch.ones_like(totals), atol=1e-5, rtol=0)
                for i, (_, ref_residual, ref_parts) in enumerate(expected[name]):
                    assert residual_share[i].item() == pytest.approx(ref_residual, abs=1e-5)
                    ref = torch.tensor(
                        [[ref_parts[(j, h)] for h in range(part_share.shape[2])] for j in range(part_share.shape[1])]
                    )
                    torch.testing.assert_close(part_share[i], ref, atol=1e-5, rtol=0)
            residual_share, ffn_share = ffn_shares(block.ffn, rows)
            torch.testing.assert_close(residual_share + ffn_share, torch.ones_like(ffn_share), atol=1e-5, rtol=0)
            ref_residual = torch.tensor([node[1] for node in expected["ffn"]])
            ref_ffn = torch.tensor([node[2] for node in expected["ffn"]])
            torch.testing.assert_close(residual_share, ref_residual, atol=1e-5, rtol=0)
            torch.testing.assert_close(ffn_share, ref_ffn, atol=1e-5, rtol=0)


@pytest.mark.parametrize("renormalize", [False, True])
def test_routes_match_the_reference_walk_and_keep_only_strong_edges(family_model, renormalize):
    inputs = _inputs(family_model)
    spec = architecture_spec(family_model.model)
    encoder_captured, decoder_captured = run_instrumented(family_model.model, spec, inputs)
    encoder, decoder = decompose_model(family_model, inputs)
    reference_encoder = ReferenceStack(encoder_captured, spec.encoder_blocks) if encoder else None
    reference_decoder = ReferenceStack(decoder_captured, spec.decoder_blocks)
    threshold = 0.02
    root = decoder[0].residual_in.shape[0] - 1
    edges = trace_routes(decoder, [root], threshold=threshold, encoder=encoder, renormalize=renormalize)
    expected = reference_route(reference_encoder, reference_decoder, root, threshold)
    assert {(e.source, e.target, e.kind) for e in edges} == set(expected)
    incoming: dict[str, float] = {}
    for edge in edges:
        assert edge.weight >= threshold
        incoming[edge.target] = incoming.get(edge.target, 0.0) + edge.weight
        if edge.kind in ("attention", "cross_attention"):
            assert len(edge.head_weights) == spec.decoder_blocks[0].self_attention.n_heads
            assert min(edge.head_weights) >= 0
            assert sum(edge.head_weights) == pytest.approx(edge.weight, abs=1e-6)
        else:
            assert edge.head_weights is None
        if not renormalize:
            assert edge.weight == pytest.approx(expected[(edge.source, edge.target, edge.kind)], abs=1e-5)
    if renormalize:
        assert all(total == pytest.approx(1.0, abs=1e-5) for total in incoming.values())
    if encoder:  # a translation's route crosses into the encoder through cross-attention
        assert any(e.kind == "cross_attention" for e in edges)
        assert any(e.source.startswith("encoder:0:embedding:") for e in edges)


def test_graph_json_round_trip_and_exporter_fields(family_model):
    target = TARGET if family_model.kind == "seq2seq" else None
    text = SOURCE if family_model.kind == "seq2seq" else PROMPT
    graph = build_contribution_graph(family_model, text, target=target, threshold=0.02, top_k=3)
    assert ContributionGraph.from_json(graph.to_json()) == graph
    ids = {n.id for n in graph.nodes}
    assert all(e.source in ids and e.target in ids for e in graph.edges)
    root = graph.node(f"decoder:{graph.n_layers}:after_ffn:{len(graph.target_tokens) - 1}")
    # the root's logit lens through the final norm is the model's own next-token distribution
    inputs = _inputs(family_model)
    with torch.no_grad():
        logits = family_model.model(**inputs).logits[0, -1]
    best = family_model.tokenizer.convert_ids_to_tokens(logits.topk(3).indices.tolist())
    assert [token for token, _ in root.top_tokens] == best
    assert root.top_tokens[0][1] == pytest.approx(logits.softmax(-1).max().item(), rel=1e-4)
    for node in graph.nodes:
        if node.kind == "ffn":
            assert len(node.top_neurons) == 3
            if node.side == "decoder":
                promoted = [value for _, value in node.promoted]
                suppressed = [value for _, value in node.suppressed]
                assert len(promoted) == 3 and promoted == sorted(promoted, reverse=True)
                assert len(suppressed) == 3 and suppressed == sorted(suppressed)
                assert promoted[0] >= suppressed[0]
        if node.side == "encoder":
            assert node.top_tokens == []
    if family_model.kind == "seq2seq":
        assert graph.n_encoder_layers == 2 and graph.source_tokens[-1] == "</s>"
    else:
        assert graph.source_tokens == [] and graph.target_tokens == PROMPT.split()


def test_seq2seq_without_target_generates_one():
    loaded = build_random_model("marian", seed=1)
    graph = build_contribution_graph(loaded, SOURCE, root_tokens="all", top_k=0)
    assert graph.target_tokens[0] == "<pad>"  # the decoder start token
    assert graph.root_tokens == list(range(len(graph.target_tokens)))
    assert all(node.top_tokens == [] for node in graph.nodes)


@pytest.mark.parametrize("target", ["bottle of milk", PROMPT + " bottle of milk"])
def test_causal_target_gives_the_same_tokens_as_attribution(target):
    """A continuation or the whole text: the graph reads exactly the tokens Inseq attribution reads."""
    from attribution.inseq_runner import attribute

    loaded = build_random_model("gpt2", seed=3)
    graph = build_contribution_graph(loaded, PROMPT, target=target, top_k=0)
    result = attribute(loaded, PROMPT, method="attention", target=target, step_scores=[])
    assert graph.target_tokens == result.target_tokens == [*PROMPT.split(), "bottle", "of", "milk"]


def test_all_roots_cover_every_final_state():
    loaded = build_random_model("gpt2", seed=2)
    graph = build_contribution_graph(loaded, PROMPT, root_tokens="all")
    n = len(PROMPT.split())
    assert graph.root_tokens == list(range(n))
    assert all(f"decoder:2:after_ffn:{i}" in {node.id for node in graph.nodes} for i in range(n))


def test_unsupported_architecture_names_the_supported_ones():
    config = GPTJConfig(vocab_size=60, n_embd=16, n_layer=1, n_head=2, rotary_dim=4)
    model = AutoModelForCausalLM.from_config(config).eval()
    loaded = LoadedModel("random-gptj", model, word_level_tokenizer(append_eos=False), "causal")
    with pytest.raises(UnsupportedError) as error:
        build_contribution_graph(loaded, PROMPT)
    message = str(error.value)
    assert "'gptj'" in message and message.endswith(f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}.")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"apply_residual_connection_post_layernorm": True}, "^BLOOM models whose residual stream is the normalised"),
        ({"pretraining_tp": 2, "slow_but_exact": True}, "^BLOOM's slow_but_exact tensor-parallel projections"),
    ],
)
def test_bloom_layouts_the_decomposition_cannot_follow_are_refused(overrides, fragment):
    config = BloomConfig(vocab_size=60, hidden_size=16, n_layer=1, n_head=2, **overrides)
    model = AutoModelForCausalLM.from_config(config).eval()
    loaded = LoadedModel("random-bloom", model, word_level_tokenizer(append_eos=False), "causal")
    with pytest.raises(UnsupportedError, match=fragment):
        build_contribution_graph(loaded, PROMPT)


@pytest.mark.parametrize("overrides", [{"pretraining_tp": 2}, {"slow_but_exact": True}])
def test_bloom_layouts_the_decomposition_follows_are_accepted(overrides):
    """Tensor-parallel pretraining alone, or ``slow_but_exact`` without it, leave the projections plain:
    the decomposition follows them exactly."""
    config = BloomConfig(vocab_size=60, hidden_size=16, n_layer=1, n_head=2, **overrides)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    loaded = LoadedModel("random-bloom", model, word_level_tokenizer(append_eos=False), "causal")
    inputs = _inputs(loaded)
    (model_output,) = block_outputs(loaded, inputs)["decoder"]
    _, (block,) = decompose_model(loaded, inputs)
    assert relative_error(block.ffn.whole, model_output) <= 1e-5
    graph = build_contribution_graph(loaded, PROMPT, top_k=0)  # one layer: the graph reads its heads there
    assert (graph.n_layers, graph.n_heads) == (1, 2)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"root_tokens": 99}, "out of range"),
        ({"root_tokens": [0, -99]}, "out of range"),
        ({"root_tokens": "last"}, "Root tokens"),
        ({"root_tokens": []}, "Root tokens"),
        ({"root_tokens": [True]}, "Root tokens"),
        ({"root_tokens": [1.5]}, "Root tokens"),
        ({"root_tokens": 1.5}, "Root tokens"),
        ({"root_tokens": 14}, r"^Token index 14 is out of range: the text has 14 tokens \(valid: -14 to 13\)\.$"),
        ({"top_k": -1}, "top_k"),
    ],
)
def test_bad_options_are_clear_errors(options, fragment):
    loaded = build_random_model("gpt2", seed=0)
    with pytest.raises(InvalidInputError, match=fragment):
        build_contribution_graph(loaded, PROMPT, **options)


def test_too_long_target_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="target is 81 tokens long; at most 64"):
        build_contribution_graph(build_random_model("bart"), SOURCE, target=" ".join(["katze"] * 80))


def test_empty_text_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="empty"):
        build_contribution_graph(build_random_model("gpt2"), "   ")


@pytest.fixture(scope="module")
def saved_gpt2(tmp_path_factory):
    loaded = build_random_model("gpt2", seed=4)
    folder = tmp_path_factory.mktemp("random-gpt2")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def test_cli_writes_a_graph_json(saved_gpt2, tmp_path):
    out = tmp_path / "graph.json"
    status = main(
        [
            "graph",
            "--model",
            str(saved_gpt2),
            "--text",
            PROMPT,
            "--token",
            "0,-1",
            "--threshold",
            "0.05",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    graph = load_result_file(out)
    assert isinstance(graph, ContributionGraph)
    assert graph.root_tokens == [0, len(PROMPT.split()) - 1] and graph.threshold == 0.05
    assert all(edge.weight >= 0.05 for edge in graph.edges)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--threshold", "1.5"], "threshold"), (["--token", "40"], "out of range"), (["--token", "x"], "root token must")],
)
def test_cli_reports_bad_input_in_one_line(saved_gpt2, tmp_path, capsys, arguments, message):
    out = tmp_path / "graph.json"
    status = main(["graph", "--model", str(saved_gpt2), "--text", PROMPT, "--out", str(out), *arguments])
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error:") and message in error
    assert not out.exists()


def test_shares_are_exact_when_parts_overshoot_the_whole():
    """Parts as large as the whole (sign flips per dimension) exercise the overshoot correction."""
    from attribution.contributions.decompose import AttentionDecomposition
    from tests.support.contributions_reference import proximity_shares

    generator = torch.Generator().manual_seed(0)
    n_heads, n_tokens, d = 3, 7, 16
    probs = torch.rand(n_heads, n_tokens, n_tokens, generator=generator).tril()
    probs = probs / probs.sum(-1, keepdim=True)
    head_vectors = torch.randn(n_heads, n_tokens, d, generator=generator) * 3
    residual = torch.randn(n_tokens, d, generator=generator)
    bias = torch.randn(d, generator=generator).expand(n_tokens, d)
    whole = residual + torch.einsum("hts,hsd->td", probs, head_vectors) + bias
    dec = AttentionDecomposition(residual, probs, head_vectors, bias, whole)
    residual_share, part_share = attention_shares(dec, torch.arange(n_tokens), budget=50)
    for i in range(n_tokens):
        parts = [residual[i]] + [probs[h, i, j] * head_vectors[h, j] for j in range(n_tokens) for h in range(n_heads)]
        expected = proximity_shares(whole[i], parts)
        assert residual_share[i].item() == pytest.approx(expected[0], abs=1e-5)
        torch.testing.assert_close(part_share[i].reshape(-1), torch.tensor(expected[1:]), atol=1e-5, rtol=0)


def test_grouped_query_attention_with_as_many_tokens_as_heads():
    """Llama here has 2 query heads sharing 1 key/value head: with a 2-token prompt the values
    ``[S, H_kv, head_dim]`` have as many sources as there are query heads, and the decomposition must
    still spread the shared kv head over both query heads (and reconstruct the model's states)."""
    loaded = build_random_model("llama", seed=3)
    spec = architecture_spec(loaded.model)
    assert spec.decoder_blocks[0].self_attention.n_heads == 2 == loaded.model.config.num_attention_heads
    assert loaded.model.config.num_key_value_heads == 1
    inputs = _inputs(loaded, "mary john")
    assert inputs["input_ids"].shape[1] == 2
    expected = block_outputs(loaded, inputs)
    _, decoder = decompose_model(loaded, inputs)
    for block, model_output in zip(decoder, expected["decoder"], strict=True):
        attention = block.self_attention
        rebuilt = attention.residual + torch.einsum("hts,hsd->td", attention.coefficients, attention.head_vectors)
        assert relative_error(rebuilt + attention.bias, attention.whole) <= 1e-5
        assert relative_error(block.ffn.whole, model_output) <= 1e-5


def _layer_norm(d: int, generator: torch.Generator, *, affine: bool) -> torch.nn.LayerNorm:
    norm = torch.nn.LayerNorm(d, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            norm.weight.copy_(1 + 0.5 * torch.randn(d, generator=generator))
            norm.bias.copy_(torch.randn(d, generator=generator))
    return norm


@pytest.mark.parametrize("affine_branch", [True, False], ids=["branch-affine", "post-affine"])
def test_norms_with_and_without_weights_are_carried_exactly(affine_branch):
    """No bundled family has a branch norm with a bias or a norm without a weight (``elementwise_affine=False``),
    but the engine claims any LayerNorm: a hand-built block with one of each, against torch's own modules."""
    from attribution.anatomy.adapters import AttentionSpec, FFNSpec, PostNorm
    from attribution.contributions.decompose import decompose_attention, decompose_ffn

    generator = torch.Generator().manual_seed(0)
    n_heads, head_dim, n_tokens, d, d_ff = 2, 4, 5, 8, 12
    branch = _layer_norm(d, generator, affine=affine_branch)
    post = _layer_norm(d, generator, affine=not affine_branch)
    residual = torch.randn(n_tokens, d, generator=generator)
    probs = torch.rand(n_heads, n_tokens, n_tokens, generator=generator).tril()
    probs = probs / probs.sum(-1, keepdim=True)
    values = torch.randn(n_tokens, n_heads, head_dim, generator=generator)
    out_weight = torch.randn(n_heads, head_dim, d, generator=generator)
    out_bias = torch.randn(d, generator=generator)
    identity = torch.nn.Identity()
    spec = AttentionSpec(
        identity, identity, identity, lambda x: x, out_weight, out_bias, n_heads, PostNorm.of(post), PostNorm.of(branch)
    )
    attention_output = sum(probs[h] @ values[:, h] @ out_weight[h] for h in range(n_heads)) + out_bias
    with torch.no_grad():
        expected = post(residual + branch(attention_output))
    attention = decompose_attention(residual, probs, values, spec)
    torch.testing.assert_close(attention.whole, expected, atol=1e-5, rtol=0)
    parts = torch.einsum("hts,hsd->td", attention.coefficients, attention.head_vectors)
    torch.testing.assert_close(attention.residual + parts + attention.bias, expected, atol=1e-5, rtol=0)

    activations = torch.randn(n_tokens, d_ff, generator=generator)
    ffn_weight = torch.randn(d_ff, d, generator=generator)
    ffn_output = activations @ ffn_weight
    ffn_spec = FFNSpec(identity, ffn_weight, post_norm=PostNorm.of(post), branch_norm=PostNorm.of(branch))
    with torch.no_grad():
        expected = post(residual + branch(ffn_output))
    ffn = decompose_ffn(residual, activations, ffn_output, ffn_spec)
    torch.testing.assert_close(ffn.whole, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(ffn.residual + ffn.ffn + ffn.bias, expected, atol=1e-5, rtol=0)


def test_shares_are_exact_when_a_part_barely_overshoots_the_whole():
    """A part exceeding the whole by 0.05% in some dimensions: the overshoot bound (the 4-norm of one
    term is that term) must keep its safety margin above the term, or the correction is skipped there."""
    from attribution.contributions.decompose import AttentionDecomposition
    from tests.support.contributions_reference import proximity_shares

    d = 8
    head_vectors = torch.tensor([[[1.0] * 4 + [0.0] * 4]])  # [H=1, S=1, d]
    residual = torch.tensor([[-0.0005] * 4 + [1.0] * 4])  # whole = 0.9995 where the part is 1
    whole = residual + head_vectors[0]
    dec = AttentionDecomposition(residual, torch.ones(1, 1, 1), head_vectors, torch.zeros(1, d), whole)
    residual_share, part_share = attention_shares(dec, torch.arange(1))
    expected = proximity_shares(whole[0], [residual[0], head_vectors[0, 0]])
    assert expected[1] == pytest.approx(3.996 / (3.996 + 3.998), abs=1e-6)
    assert residual_share[0].item() == pytest.approx(expected[0], abs=1e-6)
    assert part_share[0, 0, 0].item() == pytest.approx(expected[1], abs=1e-6)


@pytest.mark.parametrize("family", ["gpt2", "marian", "t5"])
def test_a_bfloat16_model_is_decomposed_in_float32_and_its_graph_reads_its_own_prediction(family):
    """``--dtype bfloat16``: the captured tensors are float32 copies, the decomposition sums back to the model's
    own (bfloat16) block outputs to bfloat16 rounding, and the logit lens of each root, read through the model's
    own head in its dtype (no final norm on post-LN Marian; T5's rescaling), names the model's own prediction."""
    loaded = build_random_model(family, seed=3)
    loaded.model.to(torch.bfloat16)
    inputs = _inputs(loaded)
    captured = run_instrumented(loaded.model, architecture_spec(loaded.model), inputs)
    dtypes = {value.dtype for block in captured[0] + captured[1] for value in vars(block).values() if value is not None}
    assert dtypes == {torch.float32}
    expected = block_outputs(loaded, inputs)
    encoder, decoder = decompose_model(loaded, inputs)
    for side, blocks in (("encoder", encoder), ("decoder", decoder)):
        for block, model_output in zip(blocks, expected[side], strict=True):
            assert relative_error(block.ffn.whole, model_output) <= 1e-2  # measured: 0.003 to 0.004
    text, target = (SOURCE, TARGET) if loaded.kind == "seq2seq" else (PROMPT, None)
    graph = build_contribution_graph(loaded, text, target=target, root_tokens="all", top_k=1)
    with torch.no_grad():
        predicted = loaded.model(**inputs, use_cache=False).logits[0].argmax(-1)
    roots = {
        node.token_index: node for node in graph.nodes if node.id.startswith(f"decoder:{graph.n_layers}:after_ffn")
    }
    assert len(roots) == len(predicted)
    agree = [
        roots[i].top_tokens[0][0] == loaded.tokenizer.convert_ids_to_tokens(int(p)) for i, p in enumerate(predicted)
    ]
    assert all(agree)


def test_logit_lens_reads_states_through_the_models_final_norm_and_unembedding():
    """Top tokens are the softmax of ``lm_head(ln_f(state))``; promoted / suppressed the largest rises and
    falls of those logits from ``before`` to the state, computed here with the model's own modules."""
    from attribution.contributions.logit_lens import LensRequest, LogitLens

    loaded = build_random_model("gpt2", seed=3)
    model, to_tokens, k = loaded.model, loaded.tokenizer.convert_ids_to_tokens, 4
    lens = LogitLens(architecture_spec(model), loaded.tokenizer, final_norm=True)
    generator = torch.Generator().manual_seed(0)
    states, before = torch.randn(2, 2, model.config.n_embd, generator=generator)
    with torch.no_grad():
        logits = model.lm_head(model.transformer.ln_f(states))
        delta = logits[1] - model.lm_head(model.transformer.ln_f(before[1]))

    def expected(values: torch.Tensor, sign: float = 1.0) -> list[tuple[str, float]]:
        best = (sign * values).topk(k)
        return list(zip(to_tokens(best.indices.tolist()), (sign * best.values).tolist(), strict=True))

    def assert_same(read: list[tuple[str, float]], reference: list[tuple[str, float]]) -> None:
        assert [token for token, _ in read] == [token for token, _ in reference]
        assert [value for _, value in read] == pytest.approx([value for _, value in reference], abs=1e-5)

    # a chunk where no state has a ``before`` (a residual node only), then one where one has
    (alone,) = lens.read([LensRequest(states[0])], k)
    plain, block = lens.read([LensRequest(states[0]), LensRequest(states[1], before=before[1], top=False)], k)
    for result in (alone, plain):
        assert_same(result.top_tokens, expected(logits[0].softmax(-1)))
        assert result.promoted == [] and result.suppressed == []
    assert block.top_tokens == []
    assert_same(block.promoted, expected(delta))
    assert_same(block.suppressed, expected(delta, sign=-1.0))


def test_logit_lens_of_a_bfloat16_model_runs_in_its_dtype():
    """The decomposition's float32 states are cast to the model's dtype before its final norm."""
    from attribution.contributions.logit_lens import LogitLens

    loaded = build_random_model("gpt2", seed=3)
    model = loaded.model.to(torch.bfloat16)
    lens = LogitLens(architecture_spec(model), loaded.tokenizer, final_norm=True)
    states = torch.randn(2, model.config.n_embd, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.lm_head(model.transformer.ln_f(states.to(torch.bfloat16))).float()
    logits = lens.logits(states)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected, atol=0, rtol=0)


def _model_states(loaded: LoadedModel, inputs) -> dict[tuple[int, str], torch.Tensor]:
    """The decoder's residual stream ``[T, d]`` at every node kind, read from the model's own modules:
    the first block's input, GPT-2's ``ln_2`` input (after attention), Marian's post-LN norms' outputs
    (after self- and cross-attention), every block's output (after the FFN)."""
    blocks = [block.module for block in architecture_spec(loaded.model).decoder_blocks]
    seen: dict[tuple[int, str], torch.Tensor] = {}

    def save(key: tuple[int, str], tensor) -> None:
        seen[key] = (tensor[0] if isinstance(tensor, tuple) else tensor)[0].detach().float()

    handles = [
        blocks[0].register_forward_pre_hook(
            lambda _m, args, kwargs: save((0, "embedding"), args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True,
        )
    ]
    for layer, block in enumerate(blocks, 1):
        handles.append(block.register_forward_hook(lambda _m, _a, out, layer=layer: save((layer, "after_ffn"), out)))
        if loaded.kind == "causal":
            hook = block.ln_2.register_forward_pre_hook(
                lambda _m, a, layer=layer: save((layer, "after_attention"), a[0])
            )
            handles.append(hook)
        else:
            for norm, kind in (
                ("self_attn_layer_norm", "after_attention"),
                ("encoder_attn_layer_norm", "after_cross_attention"),
            ):
                hook = getattr(block, norm).register_forward_hook(
                    lambda _m, _a, out, layer=layer, kind=kind: save((layer, kind), out)
                )
                handles.append(hook)
    with torch.no_grad():
        loaded.model(**inputs, use_cache=False)
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize(("family", "top_k"), [("gpt2", 3), ("marian", 1)])
def test_graph_nodes_read_the_states_their_ids_name(family, top_k):
    """Every node of a graph with threshold 0 (every edge kept, so every node of every layer): its logit lens
    reads the model's own state that its id names (promoted / suppressed relative to the state before that
    part of the block) and an FFN node's neurons are its own block's."""
    from attribution.contributions.logit_lens import LensRequest, LogitLens

    loaded = build_random_model(family, seed=3)
    seq2seq = loaded.kind == "seq2seq"
    text, target = (SOURCE, TARGET) if seq2seq else (PROMPT, None)
    graph = build_contribution_graph(loaded, text, target=target, threshold=0.0, root_tokens="all", top_k=top_k)
    inputs = _inputs(loaded)
    states = _model_states(loaded, inputs)
    encoder, decoder = decompose_model(loaded, inputs)
    lens = LogitLens(architecture_spec(loaded.model), loaded.tokenizer, final_norm=True)
    mid = "after_cross_attention" if seq2seq else "after_attention"
    kinds = {"decoder": ["after_attention", *(["after_cross_attention"] if seq2seq else []), "ffn", "after_ffn"]}
    kinds["encoder"] = ["after_attention", "ffn", "after_ffn"]
    expected_ids = set()
    for side, tokens in (("decoder", graph.target_tokens), ("encoder", graph.source_tokens)):
        expected_ids |= {f"{side}:0:embedding:{i}" for i in range(len(tokens))}
        expected_ids |= {
            f"{side}:{layer}:{kind}:{i}" for layer in (1, 2) for kind in kinds[side] for i in range(len(tokens))
        }
    assert {node.id for node in graph.nodes} == expected_ids

    def same(read: list[tuple[str, float]], reference: list[tuple[str, float]]) -> None:
        assert [token for token, _ in read] == [token for token, _ in reference]
        assert [value for _, value in read] == pytest.approx([value for _, value in reference], abs=1e-4)

    for node in graph.nodes:
        layer, i = node.layer, node.token_index
        if node.kind == "ffn":
            blocks = decoder if node.side == "decoder" else encoder
            scores = neuron_scores(blocks[layer - 1].ffn, torch.tensor([i]))[0]
            assert [n for n, _ in node.top_neurons] == scores.topk(top_k).indices.tolist()
        if node.side == "encoder":
            assert node.top_tokens == node.promoted == node.suppressed == []
            continue
        state, before = {
            "embedding": ((0, "embedding"), None),
            "after_attention": (
                (layer, "after_attention"),
                (layer - 1, "after_ffn") if layer > 1 else (0, "embedding"),
            ),
            "after_cross_attention": ((layer, "after_cross_attention"), (layer, "after_attention")),
            "ffn": ((layer, "after_ffn"), (layer, mid)),
            "after_ffn": ((layer, "after_ffn"), None),
        }[node.kind]
        request = LensRequest(states[state][i], states[before][i] if before else None, top=node.kind != "ffn")
        (expected,) = lens.read([request], top_k)
        same(node.top_tokens, expected.top_tokens)
        same(node.promoted, expected.promoted)
        same(node.suppressed, expected.suppressed)
        assert len(node.top_tokens) == (top_k if node.kind != "ffn" else 0)
        assert len(node.promoted) == (top_k if before else 0)


def test_graph_defaults_options_and_progress_reach_the_result():
    loaded = build_random_model("gpt2", seed=3)
    root = f"decoder:2:after_ffn:{len(PROMPT.split()) - 1}"
    calls: list[tuple[float, str]] = []
    default = build_contribution_graph(
        loaded, PROMPT, progress=lambda done, total, message="": calls.append((done / total, message))
    )
    # one report per stage, fractions rising from 0 to 1
    assert [message for _, message in calls] == [
        "preparing inputs",
        "forward pass",
        "tracing routes",
        "logit lens",
        "done",
    ]
    fractions = [fraction for fraction, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(set(fractions))
    # documented defaults: threshold 0.04, raw shares (not renormalised), top 5, the final norm in the lens
    assert default.threshold == 0.04 and default.renormalized is False and default.final_norm_in_logit_lens is True
    assert len(default.node(root).top_tokens) == 5
    incoming: dict[str, float] = {}
    renormalized = build_contribution_graph(loaded, PROMPT, renormalize=True)
    assert renormalized.renormalized is True
    for edge in renormalized.edges:
        if edge.kind != "ffn" or edge.target.split(":")[2] != "ffn":  # the FFN node's own input edge has weight 1
            incoming[edge.target] = incoming.get(edge.target, 0.0) + edge.weight
    assert incoming and all(total == pytest.approx(1.0, abs=1e-5) for total in incoming.values())
    # without the final norm the root's lens reads lm_head(state after the last block) directly
    raw = build_contribution_graph(loaded, PROMPT, final_norm_in_logit_lens=False, top_k=1)
    assert raw.final_norm_in_logit_lens is False
    with torch.no_grad():
        logits = loaded.model.lm_head(block_outputs(loaded, _inputs(loaded))["decoder"][-1][-1])
    ((token, probability),) = raw.node(root).top_tokens
    assert token == loaded.tokenizer.convert_ids_to_tokens(int(logits.argmax()))
    assert probability == pytest.approx(logits.softmax(-1).max().item(), rel=1e-4)


def test_edges_whose_share_equals_the_threshold_are_kept():
    """A hand-made block whose shares are exact binary fractions. Token 1's state after attention is
    [1, 0] (residual) + 0.5 [1, 0] + 0.5 [1, 0] = [2, 0]: proximities 1, 0.5, 0.5, so shares 0.5 (residual)
    and 0.25 per source token; the FFN then adds [2, 0]: 0.5 and 0.5. Routes keep shares >= the threshold,
    raw (``trace_routes`` renormalises only when asked)."""
    from attribution.contributions.decompose import AttentionDecomposition, BlockDecomposition, FFNDecomposition

    residual = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    probabilities = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])  # [heads, T, S]
    head_vectors = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # [heads, S, d]
    mid = residual + torch.einsum("hts,hsd->td", probabilities, head_vectors)
    zeros = torch.zeros(2, 2)
    attention = AttentionDecomposition(residual, probabilities, head_vectors, zeros, mid)
    ffn = FFNDecomposition(mid, mid.clone(), zeros, 2 * mid, torch.zeros(2, 1), torch.zeros(1, 2), mid.clone())
    block = BlockDecomposition(residual, attention, None, ffn, parallel_residual=False)
    top = {
        ("decoder:1:after_attention:1", "decoder:1:after_ffn:1", "residual", 0.5),
        ("decoder:1:ffn:1", "decoder:1:after_ffn:1", "ffn", 0.5),
        ("decoder:1:after_attention:1", "decoder:1:ffn:1", "ffn", 1.0),
        ("decoder:0:embedding:1", "decoder:1:after_attention:1", "residual", 0.5),
    }
    tokens = {(f"decoder:0:embedding:{j}", "decoder:1:after_attention:1", "attention", 0.25) for j in (0, 1)}
    for threshold, expected in ((0.25, top | tokens), (0.5, top)):
        edges = trace_routes([block], [1], threshold=threshold)
        assert {(e.source, e.target, e.kind, e.weight) for e in edges} == expected


def test_root_tokens_count_from_both_ends():
    from attribution.contributions.graph import resolve_root_tokens

    assert resolve_root_tokens(-13, 13) == [0]
    assert resolve_root_tokens([12, -1, 0, -13], 13) == [0, 12]
    assert resolve_root_tokens("all", 3) == [0, 1, 2]


def test_token_limits_name_what_is_too_long():
    """``max_tokens`` (an operator's limit, here below the model's 64) applies to the prompt, the target's
    characters and the whole text read, each refused with its own message."""
    import re

    loaded = build_random_model("gpt2", seed=0)
    n = len(PROMPT.split())
    cases = [
        (PROMPT, None, n - 1, f"The input text is {n} tokens long; random-gpt2 accepts at most {n - 1} here."),
        (PROMPT, "bottle of milk", n + 2, f"Prompt and target are {n + 3} tokens long; at most {n + 2} are accepted"),
        ("mary", "milk " * 200, 10, "The target is 1,000 characters long, far more than the 10 tokens random-gpt2"),
    ]
    for text, target, max_tokens, message in cases:
        with pytest.raises(InvalidInputError, match=f"^{re.escape(message)}"):
            build_contribution_graph(loaded, text, target=target, max_tokens=max_tokens)


@pytest.mark.parametrize("tied", [True, False])
def test_t5_output_scaling_is_read_from_current_and_older_configs(tied):
    """transformers 5 records an untied T5 (v1.1, FLAN-T5) in ``scale_decoder_outputs`` and keeps
    ``tie_word_embeddings`` True; older configs have only ``tie_word_embeddings``. Either way the final state is
    rescaled by d_model^-0.5 exactly when the LM head is tied."""
    from transformers import T5Config

    from attribution.anatomy.adapters import FAMILIES as ADAPTER_FAMILIES

    expected = 32**-0.5 if tied else 1.0
    config = T5Config(d_model=32, tie_word_embeddings=tied)
    assert (config.scale_decoder_outputs, config.tie_word_embeddings) == (tied, True)
    assert ADAPTER_FAMILIES["t5"](config).output_scale == expected
    del config.scale_decoder_outputs  # as an older transformers wrote it
    config.tie_word_embeddings = tied
    assert ADAPTER_FAMILIES["t5"](config).output_scale == expected


# ---- the decoder-side tokens: a generated target, the limits, the tokenizer's special tokens ----


def _greedy_ids(loaded: LoadedModel, text: str, max_new_tokens: int) -> list[int]:
    encoded = loaded.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return loaded.model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)[0].tolist()


def test_a_generated_target_is_greedy_up_to_the_decoders_positions_whatever_the_generation_config_says():
    loaded = build_never_ending_model("marian", seed=5)  # 64 decoder positions: the start token and 63 generated tokens
    greedy = _greedy_ids(loaded, SOURCE, 63)
    assert len(greedy) == 64
    with torch.no_grad():
        beams = loaded.model.generate(
            **loaded.tokenizer(SOURCE, return_tensors="pt"), max_new_tokens=63, do_sample=False, num_beams=3
        )[0].tolist()
    assert beams != greedy  # so that a beam search would show
    loaded.model.generation_config.do_sample = True  # as some Hub models ship
    loaded.model.generation_config.num_beams = 3
    loaded.model.generation_config.temperature = 5.0
    graph = build_contribution_graph(loaded, SOURCE, top_k=0)
    assert graph.target_tokens == loaded.tokenizer.convert_ids_to_tokens(greedy)
    assert graph.target_text == loaded.tokenizer.decode(greedy, skip_special_tokens=True)


def test_without_a_context_limit_at_most_64_tokens_are_generated():
    loaded = build_never_ending_model("t5", seed=5)
    loaded.tokenizer.model_max_length = int(1e30)  # what transformers sets when a tokenizer names no limit
    assert loaded.max_input_tokens is None
    graph = build_contribution_graph(loaded, SOURCE, top_k=0)
    assert graph.target_tokens == loaded.tokenizer.convert_ids_to_tokens(_greedy_ids(loaded, SOURCE, 64))
    assert len(graph.target_tokens) == 65  # the start token and 64 generated tokens


def test_a_generated_target_gives_the_graph_of_that_target_given():
    """Generation ending with ``</s>``: the decoder inputs are the start token and the words (the last node
    predicts the end), exactly as when the generated sentence is given as the target."""
    from attribution.models import load_model
    from tests.support.corpus_data import translation_rows

    loaded = load_model("tiny-synth-translate")  # trained: it ends its translations
    source = translation_rows(1)[0]["source"]
    generated = build_contribution_graph(loaded, source, root_tokens="all")
    assert 2 < len(generated.target_tokens) < 20 and "</s>" not in generated.target_tokens
    given = build_contribution_graph(loaded, source, target=generated.target_text, root_tokens="all")
    assert generated.target_tokens == given.target_tokens
    assert [(e.source, e.target, e.weight) for e in generated.edges] == [
        (e.source, e.target, e.weight) for e in given.edges
    ]


def test_a_prompt_and_target_exactly_at_the_token_limit_are_accepted():
    loaded = build_random_model("gpt2", seed=5)
    prompt, target = "when mary and john went", "to the store"  # 5 + 3 tokens
    graph = build_contribution_graph(loaded, prompt, target=target, max_tokens=8, top_k=0)
    assert len(graph.target_tokens) == 8 and graph.target_text == target
    with pytest.raises(InvalidInputError, match="Prompt and target are 8 tokens long; at most 7 are accepted here"):
        build_contribution_graph(loaded, prompt, target=target, max_tokens=7, top_k=0)
    assert build_contribution_graph(loaded, prompt, top_k=0).target_text == ""  # no target: nothing explained after


def test_a_causal_model_without_a_context_limit_takes_long_prompts():
    loaded = build_random_model("bloom", seed=5)  # ALiBi: no position table
    loaded.tokenizer.model_max_length = int(1e30)
    assert loaded.max_input_tokens is None
    prompt = " ".join(["the cat sees the dog ."] * 20)  # 120 tokens
    graph = build_contribution_graph(loaded, prompt, top_k=0)
    assert len(graph.target_tokens) == 120


def test_the_graph_reads_the_tokens_the_tokenizer_adds():
    """A Llama-3-style tokenizer puts a begin-of-text token first: the model reads it, so the graph has it."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.support.real_tokenizers import byte_level_bpe

    tokenizer = byte_level_bpe()
    bos = tokenizer.bos_token
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    loaded = LoadedModel(model_id="bpe-llama", model=model, tokenizer=tokenizer, kind="causal")
    graph = build_contribution_graph(loaded, "When Mary went", top_k=0)
    assert graph.target_tokens[0] == bos
    assert graph.target_tokens == tokenizer.convert_ids_to_tokens(tokenizer("When Mary went")["input_ids"])


def test_a_translation_that_ends_at_once_is_the_start_token_alone():
    loaded = build_random_model("marian", seed=5)
    with torch.no_grad():
        loaded.model.final_logits_bias[0, loaded.tokenizer.eos_token_id] = 1e9  # </s> first
    graph = build_contribution_graph(loaded, SOURCE, top_k=0)
    assert graph.target_tokens == [loaded.tokenizer.pad_token] and graph.target_text == ""


def test_a_target_without_an_end_token_keeps_all_its_words():
    """A tokenizer that appends no ``</s>`` to targets: every word is a decoder input after the start token."""
    loaded = build_random_model("marian", seed=5)
    loaded.tokenizer = word_level_tokenizer(append_eos=False)
    graph = build_contribution_graph(loaded, SOURCE, target="die katze", top_k=0)
    assert graph.target_tokens == [loaded.tokenizer.pad_token, "die", "katze"]


def test_an_empty_target_is_refused_with_its_reason():
    loaded = build_random_model("marian", seed=5)
    with pytest.raises(InvalidInputError) as refused:
        build_contribution_graph(loaded, SOURCE, target="   ")
    assert str(refused.value) == "The target text is empty: give a translation or leave it out to generate one."


def test_a_target_exactly_at_the_token_limit_is_accepted_and_without_a_limit_any_length_is():
    loaded = build_random_model("marian", seed=5)
    graph = build_contribution_graph(loaded, "the cat", target="die katze", max_tokens=3, top_k=0)
    assert len(graph.target_tokens) == 3  # the start token, die, katze
    with pytest.raises(InvalidInputError) as refused:
        build_contribution_graph(loaded, "cat", target="die katze", max_tokens=2, top_k=0)  # the source fits
    assert str(refused.value) == "The target is 3 tokens long; at most 2 are accepted here."
    unlimited = build_random_model("t5", seed=5)
    unlimited.tokenizer.model_max_length = int(1e30)
    assert unlimited.max_input_tokens is None
    long_target = " ".join(["die katze sieht den hund ."] * 20)  # 120 words
    graph = build_contribution_graph(unlimited, "the cat", target=long_target, top_k=0)
    assert len(graph.target_tokens) == 121


def test_key_value_heads_that_do_not_divide_the_query_heads_are_refused_clearly():
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=60, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=3, head_dim=8,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config).eval()
    with pytest.raises(UnsupportedError) as error:
        architecture_spec(model)
    assert str(error.value) == "Cannot read 3 key/value heads for 2 query heads from v_proj."


def test_an_unknown_name_is_an_attribute_error_naming_it():
    """``from attribution.contributions import X`` of a missing name fails as for any module (the lazy imports
    must not hide a typo)."""
    import attribution.contributions as package

    with pytest.raises(AttributeError) as missing:
        package.build_contribution_graf  # noqa: B018
    assert str(missing.value) == "module 'attribution.contributions' has no attribute 'build_contribution_graf'"
