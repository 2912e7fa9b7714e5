"""The live app, attacked: the hostile-input corpus, time budgets, queue groups, bounded files and memory.

The app runs in its own process (``tests/support/app_server.py``) so its memory is measured alone and its
shutdown is real; requests go through Gradio's raw HTTP API, as any client can send them. The
config allows typed model ids (as an online Space does) while every load stays offline, lists a
model folder with corrupt weights (an operator's mistake), gives model runs one slot per queue
group and an 8 s time budget, and makes LIME deliberately endless (100 000 samples) so a request
can be made to hit its budget.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
from pathlib import Path

import gradio as gr
import pytest
from gradio.helpers import special_args

from attribution.models import bundled_model_path
from attribution.results import AttributionResult, ContributionGraph
from space.gradio_app.request_guard import FOREIGN_FILE
from space.gradio_app.wiring import GENERIC_ERROR
from tests.support import texts
from tests.support.app_server import Answer, AppProcess, call, file_payload, refused_call, serve_app, stop, upload
from tests.support.hostile_inputs import (
    MARKUP,
    REPO_ID_CASES,
    RESULT_REFUSAL,
    TEXT_CASES,
    corpus_file_cases,
    corrupt_model_folder,
    huge_integer_json,
    model_id_cases,
    result_json_cases,
    valid_attribution,
    valid_comparison,
    valid_graph,
)

IOI = texts.IOI_PROMPT
IOI_COUNTERFACTUAL = texts.IOI_COUNTERFACTUAL
PAGE = "HTML page (self-contained, works offline)"
SOURCE, TARGET = texts.TRANSLATION_OLD_CAT
#: The source and target language inputs every /attribute, /graph, /graph_threshold and /compare call ends with
#: (raw HTTP calls send every input; gradio_client fills them in): empty, not set.
NO_LANGUAGES = ("", "")
BUDGET_S = 8
MAX_RESULT_MB = 1
MAX_PASSES = 1_000_000
MAX_CORPUS_ROWS = 5
CORPUS_ROW = b'{"source": "the cat sees a bird", "target": "ka vesa mi avi vidas"}\n'
#: Server memory may grow this much over the whole hostile corpus (it grew by 2.5 GiB on one /dev/zero request).
RSS_GROWTH_LIMIT_MIB = 300


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> AppProcess:
    folder = tmp_path_factory.mktemp("hardening")
    corrupt = corrupt_model_folder(bundled_model_path("tiny-ioi-gpt2"), folder / "corrupt-gpt2", how="truncated")
    config = {
        "models": ["tiny-ioi-gpt2", "tiny-synth-translate", str(corrupt)],
        "default_model": "tiny-ioi-gpt2",
        "max_input_tokens": 40,
        "max_new_tokens": 3,
        "methods": ["saliency", "attention", "lime", "occlusion"],
        "method_params": {"lime": {"n_samples": 100_000}},
        "concurrency_limit": 1,
        "time_budget_s": BUDGET_S,
        "max_model_passes": MAX_PASSES,
        "max_result_mb": MAX_RESULT_MB,
        "cache_examples": "off",
        "max_corpus_rows": MAX_CORPUS_ROWS,
        "max_sessions": 50,  # every raw request opens a session: the memory bound is this many sessions' state
    }
    with serve_app(config, folder, online=True) as served:
        served.corrupt = str(corrupt)  # type: ignore[attr-defined]
        yield served


def _attribute(app: AppProcess, model: str, text: str, target: str = "", method: str = "saliency") -> Answer:
    return call(app.url, "attribute", model, text, target, method, ["probability"], "", *NO_LANGUAGES)


def _graph_json(app: AppProcess) -> str:
    answer = call(app.url, "graph", "tiny-ioi-gpt2", IOI, "", 0.04, False, "-1", *NO_LANGUAGES)
    assert answer.event == "complete", answer.data
    return answer.data[1]


def _refused(answer: Answer, expect: str) -> str:
    """The one line the user sees: a gr.Error message matching ``expect``, never a traceback."""
    assert answer.event == "error", answer.data
    message = (answer.data or {}).get("error")
    assert isinstance(message, str) and message, answer.data
    assert "\n" not in message and "Traceback" not in message and len(message) <= 600, message
    assert re.search(expect, message), message
    return message


@pytest.mark.server
@pytest.mark.slow
def test_hostile_corpus_one_line_each_memory_bounded_next_request_served(app: AppProcess, tmp_path: Path) -> None:
    # Warm up (every code path the corpus reaches once, so imports are not counted as growth): both models,
    # an export, a graph, an ablation, a patching sweep, a comparison with its faithfulness, a corpus upload.
    good = _attribute(app, "tiny-ioi-gpt2", IOI)
    assert good.event == "complete"
    assert _attribute(app, "tiny-synth-translate", SOURCE, TARGET, method="attention").event == "complete"
    graph_json = _graph_json(app)
    assert call(app.url, "export", "Attribute", "Result JSON", good.data[3], "", "", "").event == "complete"
    assert call(app.url, "graph_ablate", *_ablate(graph_json)).event == "complete"
    assert _intervene(app, IOI).event == "complete"
    compared = call(app.url, "compare", SOURCE, ["tiny-synth-translate"], ["saliency"], TARGET, "", *NO_LANGUAGES)
    assert call(app.url, "compare_faithfulness", compared.data[1], True).event == "complete"
    assert call(app.url, *_corpus(upload(app.url, "warm.jsonl", CORPUS_ROW))).event == "complete"
    rss_before = app.rss_mib()

    server_file = tmp_path / "another-users-result.json"
    valid_attribution().to_json(server_file)
    seen: dict[str, set[str]] = {}
    for case in result_json_cases(max_bytes=MAX_RESULT_MB * 1024**2, server_file=server_file):
        answers = {
            "export": call(
                app.url, "export", "Compare", "HTML page (self-contained, works offline)", "", "", case.value, ""
            ),
            "export_intervene": call(app.url, "export", "Intervene", PAGE, "", "", "", case.value),
            "graph_choices": call(app.url, "graph_choices", case.value),
            # with a node or edge chosen, so the JSON is read (with none chosen nothing is read: an empty table)
            "graph_node": call(app.url, "graph_node", case.value, "decoder:0:residual:0"),
            "graph_edge": call(app.url, "graph_edge", case.value, "decoder:1:attention:0->0"),
            "graph_ablate": call(app.url, "graph_ablate", *_ablate(case.value)),
            "compare_faithfulness": call(app.url, "compare_faithfulness", case.value, True),
            "push": call(app.url, "push", "Attribute", case.value, "", "", "alice/demo", "hf_token", ""),
            "push_intervene": call(app.url, "push", "Intervene", "", "", "", "alice/demo", "hf_token", case.value),
        }
        for api, answer in answers.items():
            seen.setdefault(api, set()).add(_refused(answer, RESULT_REFUSAL))
        # The threshold slider does not trust the shown graph: a bad one is recomputed from the inputs.
        rethreshold = call(
            app.url, "graph_threshold", "tiny-ioi-gpt2", IOI, "", 0.1, False, "-1", case.value, *NO_LANGUAGES
        )
        assert rethreshold.event == "complete" and ContributionGraph.from_json(rethreshold.data[1]).threshold == 0.1
    # One refusal whatever the cause: a server path that exists reads exactly like one that does not.
    assert all(len(messages) == 1 for messages in seen.values()), seen

    for case in TEXT_CASES:
        expect = case.expect.replace(r"\d+ tokens", "40 tokens")
        _refused(_attribute(app, "tiny-ioi-gpt2", case.value), expect)
        _refused(_attribute(app, "tiny-ioi-gpt2", IOI, case.value), expect.replace("input text", "target"))
        _refused(call(app.url, "graph", "tiny-ioi-gpt2", case.value, "", 0.04, False, "-1", *NO_LANGUAGES), expect)
        _refused(
            call(app.url, "compare", case.value, ["tiny-synth-translate"], ["saliency"], "", "", *NO_LANGUAGES), expect
        )
        _refused(_intervene(app, case.value), expect)  # the input, the counterfactual, a target: each one line
        _refused(_intervene(app, IOI, case.value), expect)
        _refused(call(app.url, "graph_ablate", *_ablate(graph_json, target=case.value)), expect)
    _refused(_intervene(app, IOI, contrast="\ud800"), r"The contrast token is not valid text")
    _refused(call(app.url, "graph_ablate", *_ablate(graph_json, component="<script>")), r"Cannot read the component")
    forged = valid_comparison().to_json()  # valid JSON of a model this app does not have: never loaded
    _refused(call(app.url, "compare_faithfulness", forged, True), r"Cannot load 'synthetic-seq2seq'")
    for case in model_id_cases():
        _refused(_attribute(app, case.value, IOI), case.expect)
        _refused(_intervene(app, IOI, model=case.value), case.expect)
    _hostile_corpus_uploads(app, server_file)
    for case in REPO_ID_CASES:
        _refused(call(app.url, "push", "Attribute", good.data[3], "", "", case.value, "hf_token", ""), case.expect)
    _refused(_attribute(app, app.corrupt, IOI), r"Cannot load '.*corrupt-gpt2': .*(header|deserializ)")
    _refused(
        call(app.url, "graph", "tiny-ioi-gpt2", IOI, "", 0.04, False, "99", *NO_LANGUAGES),
        r"Token index 99 is out of range",
    )
    _refused(
        call(app.url, "compare", IOI, ["tiny-ioi-gpt2"], ["saliency"], "", "0-0 " * 10_000, *NO_LANGUAGES),
        r"The gold alignment is longer than 20,000 characters",
    )
    _refused(
        # LIME's 100,000 samples for each of the 15 target tokens: over the cap before anything runs
        call(
            app.url,
            "compare",
            f"{SOURCE} {SOURCE}",
            ["tiny-synth-translate"],
            ["lime"],
            f"{TARGET} {TARGET}",
            "",
            *NO_LANGUAGES,
        ),
        rf"This comparison would need about [\d,]+ model passes; this deployment allows at most {MAX_PASSES:,}",
    )
    markup = _attribute(app, "tiny-ioi-gpt2", MARKUP)  # markup is text, not an error
    assert markup.event == "complete" and AttributionResult.from_json(markup.data[3]).source_text == MARKUP

    after = _attribute(app, "tiny-ioi-gpt2", IOI)  # the next good request is served, with the same answer
    assert after.event == "complete" and after.data[3] == good.data[3].replace(
        json.loads(good.data[3])["provenance"]["created_at"], json.loads(after.data[3])["provenance"]["created_at"]
    )
    assert call(app.url, "graph_node", graph_json, None).event == "complete"
    growth = app.rss_mib() - rss_before
    print(f"server memory grew by {growth:.0f} MiB over the hostile corpus")
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"


def _intervene(
    app: AppProcess,
    text: str,
    counterfactual: str = IOI_COUNTERFACTUAL,
    *,
    contrast: str = "",
    model: str = "tiny-ioi-gpt2",
) -> Answer:
    return call(app.url, "intervene", model, text, counterfactual, "", "", contrast, "-1")


def _ablate(graph_json: str, *, target: str = "", component: str = "decoder:1:ffn:*") -> tuple:
    """The arguments of ``/graph_ablate``: model, text, target, graph JSON, node, edge, what, mode, threshold, ids,
    and the figure's selection."""
    return ("tiny-ioi-gpt2", IOI, target, graph_json, None, None, "edge", "zero", 0.04, component, None)


def _corpus(upload_value, *, methods=("saliency",), model: str = "tiny-synth-translate", text_field: str = "source"):
    return ("corpus", upload_value, [model], list(methods), False, text_field, "target", "alignment")


def _hostile_corpus_uploads(app: AppProcess, server_file: Path) -> None:
    """``/corpus``: uploaded files of every bad kind, file inputs naming server paths, bad choices."""
    for case in corpus_file_cases(max_rows=MAX_CORPUS_ROWS):
        name, content = case.value
        message = _refused(call(app.url, *_corpus(upload(app.url, name, content))), case.expect)
        assert "gradio-temp" not in message  # the file is named by its own name, never by its server path
    # A file input may only name a file uploaded in the same session: anything else is refused before Gradio
    # acts on it (one line that echoes nothing; nothing is read); a value that is no file at all, by Gradio.
    for value in (file_payload("/etc/passwd"), file_payload("/dev/zero"), file_payload(str(server_file))):
        assert refused_call(app.url, *_corpus(value)) == (400, FOREIGN_FILE), value
    for value in ("/etc", 42):
        refused = call(app.url, *_corpus(value))
        assert refused.event == "error" and refused.data == {"error": None}, (value, refused.data)
    good, session = upload(app.url, "pairs.jsonl", CORPUS_ROW), "hardening"  # one session reuses its upload
    _refused(call(app.url, *_corpus(good, methods=["magic"]), session=session), r"'magic' .*is not in the list of")
    _refused(call(app.url, *_corpus(good, model="../../etc"), session=session), r"is not a Hugging Face model id")
    _refused(call(app.url, *_corpus(good, text_field="a\ud800"), session=session), r"pairs\.jsonl has no text field")
    done = call(app.url, *_corpus(good), session=session)
    assert done.event == "complete" and done.data[0].startswith("1 of 1 records explained"), done.data


def test_every_model_run_waits_in_a_model_group_and_cheap_requests_in_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queue groups: cheap requests (re-walks, details, exports) never share a queue with model runs, and the
    intervention and corpus requests run in their own groups (a corpus one at a time).

    Every event is in a known group, and no event outside the model groups asks for a model: each is called with
    the inputs that would need one if anything could (a graph cut above the slider's threshold, a text that is
    not the graph's), with the model cache and the loader failing the test when asked.
    """
    import attribution.models
    from space.gradio_app import build_app
    from space.gradio_app.config import SpaceConfig

    config = SpaceConfig(
        models=("tiny-ioi-gpt2", "tiny-synth-translate"), default_model="tiny-ioi-gpt2", cache_examples="off"
    )
    demo, ctx = build_app(config, hub_reachable=False)
    groups = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values() if fn.api_name}
    model_runs = {"attribute": "attribution", "compare": "attribution", "graph": "graph", "corpus": "corpus"}
    model_runs |= dict.fromkeys(
        ("graph_ablate", "intervene", "compare_faithfulness", "graph_threshold"), "intervention"
    )
    model_runs["graph_threshold"] = "graph"  # it may recompute the graph
    model_runs["graph_neurons"] = "graph"  # a forward pass reading the neurons
    model_runs["graph_lens"] = "graph"  # a forward pass read through the logit lens
    model_runs |= dict.fromkeys(  # the Features tab: SAE features, their interventions, the viewer, two prompts
        ("features", "feature_intervention", "feature_route", "viewer", "layer_compare"), "intervention"
    )
    for api, group in model_runs.items():
        assert groups[api][0] == group, (api, groups[api])
    assert groups["corpus"][1] == 1
    cheap = ("graph_rewalk", "graph_choices", "graph_selection", "graph_node", "graph_edge", "export")
    for api in cheap:
        assert groups[api] == ("light", config.light_concurrency_limit), (api, groups[api])
    assert groups["push"][0] == "push"
    assert {"light", "push"}.isdisjoint(model_runs.values())
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {*model_runs, *cheap, "push"}, public  # a new endpoint must be placed in this test too

    asked: list[str] = []

    def no_model(*args: object, **kwargs: object) -> None:
        asked.append(current)
        raise AssertionError("a cheap event asked for a model")

    monkeypatch.setattr(ctx.cache, "get_or_load", no_model)
    monkeypatch.setattr(attribution.models, "load_model_uncached", no_model)
    graph_json = valid_graph().at_threshold(0.1).to_json()  # above the slider's 0.04: not re-walkable
    queued = [fn for fn in demo.fns.values() if fn.queue]
    assert all(fn.concurrency_id in {*model_runs.values(), "light", "push"} for fn in queued)
    ours = [fn for fn in demo.fns.values() if fn.fn is not None and not fn.fn.__module__.startswith("gradio")]
    cheap_events = [fn for fn in ours if fn.concurrency_id not in model_runs.values()]  # Gradio's own: no model
    assert {fn.api_name for fn in cheap_events} >= {*cheap, "push"}
    for fn in cheap_events:
        current = fn.api_name
        values = [graph_json if isinstance(block, gr.Code) else getattr(block, "value", None) for block in fn.inputs]
        arguments, _, _, _ = special_args(fn.fn, values)
        with contextlib.suppress(gr.Error):  # a refusal (nothing to push, nothing selected) is fine; a model is not
            fn.fn(*arguments)
    assert asked == [], f"cheap events asked for a model: {asked}"


@pytest.mark.server
def test_a_request_past_its_budget_is_stopped_while_cheap_requests_are_served(app: AppProcess) -> None:
    graph_json = _graph_json(app)
    reference = _attribute(app, "tiny-synth-translate", SOURCE, TARGET)
    answers: dict[str, Answer] = {}
    started = threading.Event()

    def send(name: str, *request) -> None:
        if name == "long":
            started.set()
        answers[name] = call(app.url, *request)

    long = threading.Thread(
        target=send,
        args=("long", "attribute", "tiny-synth-translate", SOURCE, TARGET, "lime", [], "", *NO_LANGUAGES),
    )
    long.start()
    started.wait()
    threading.Event().wait(1.0)  # let the long request reach its model run (its budget is far longer)
    # Same queue group as the long run (one slot): waits for it.
    queued = threading.Thread(
        target=send,
        args=("queued", "attribute", "tiny-synth-translate", SOURCE, TARGET, "saliency", [], "", *NO_LANGUAGES),
    )
    queued.start()
    cheap = {
        "node": ("graph_node", graph_json, None),
        "threshold": ("graph_threshold", "tiny-ioi-gpt2", IOI, "", 0.2, False, "-1", graph_json, *NO_LANGUAGES),
        "export": ("export", "Contribution graph", "Result JSON", "", graph_json, "", ""),
        "graph": ("graph", "tiny-ioi-gpt2", IOI, "", 0.05, False, "-1", *NO_LANGUAGES),  # another model, group
    }
    for name, request in cheap.items():
        send(name, *request)
    long.join()
    queued.join()

    message = _refused(
        answers["long"],
        rf"The attribution was stopped: it ran past this deployment's time budget "
        rf"of {BUDGET_S} s\. Try a shorter text",
    )
    assert message.endswith("or a cheaper method (saliency, attention).")
    for name in cheap:
        assert answers[name].event == "complete", (name, answers[name].data)
        assert answers[name].finished < answers["long"].finished, f"{name} waited behind the long run"
    assert answers["queued"].event == "complete" and answers["queued"].finished > answers["long"].finished
    # The cancelled run left the model as it was: the same request gives the same scores as before it.
    assert json.loads(answers["queued"].data[3])["source_scores"] == json.loads(reference.data[3])["source_scores"]
    rewalked = ContributionGraph.from_json(answers["threshold"].data[1])
    assert rewalked.threshold == 0.2 and all(edge.weight >= 0.2 for edge in rewalked.edges)


@pytest.mark.server
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_exports_live_in_one_bounded_folder_and_go_at_shutdown(tmp_path: Path, signum: int) -> None:
    config = {"models": ["tiny-ioi-gpt2"], "default_model": "tiny-ioi-gpt2", "cache_examples": "off"}
    stale = tmp_path / "gradio-temp" / "attribution-explorer" / "app-999999999-0badc0de"
    stale.mkdir(parents=True)
    (stale / "left-by-a-crash.html").write_text("old")
    with serve_app(config, tmp_path) as served:
        assert not stale.exists()  # a dead process's folder is removed at start-up
        graph = _graph_json(served)
        page = call(
            served.url, "export", "Contribution graph", "HTML page (self-contained, works offline)", "", graph, "", ""
        )
        assert page.event == "complete"
        refused = call(served.url, "export", "Contribution graph", "Result JSON", "", "/etc/passwd", "", "")
        assert refused.event == "error"
        root = served.gradio_temp / "attribution-explorer"
        (own,) = root.iterdir()
        assert own.name.startswith(f"app-{served.pid}-")
        files = [p for p in served.gradio_temp.rglob("*") if p.is_file() and p.suffix in (".html", ".json")]
        assert [p.parent.parent for p in files] == [own], files  # one file, one copy: Gradio serves ours
        assert len(list(own.iterdir())) == 1  # the refused export created nothing
        stop(served, signum=signum)
        assert served.process.returncode == 0, served.log.read_text(errors="replace")[-2000:]  # a clean exit
        assert not own.exists()  # cleaned at shutdown


# ---------------------------------------------------------------------- hardening, round 2 (issue 18)

#: Run in the app's process before it is built: the node and edge details fail as a bug would.
BROKEN_DETAILS = """
from space.gradio_app.tabs import graph_selection

def failing(name):
    def handler(*args, **kwargs):
        raise RuntimeError("injected failure")

    handler.__qualname__ = name
    return handler

graph_selection.node_details, graph_selection.edge_details = failing("node_details"), failing("edge_details")
"""


@pytest.mark.server
@pytest.mark.slow
def test_an_unexpected_failure_in_node_and_edge_details_is_the_generic_line(tmp_path: Path) -> None:
    """``/graph_node`` and ``/graph_edge`` call a ``functools.partial``: the error wrapper must still log it and
    answer the generic line (it used to fail on the partial's missing ``__name__``, and Gradio showed its raw
    "upstream Gradio app has raised an exception")."""
    config = {"models": ["tiny-ioi-gpt2"], "default_model": "tiny-ioi-gpt2", "cache_examples": "off"}
    graph_json = valid_graph().to_json()
    with serve_app(config, tmp_path, before_start=BROKEN_DETAILS) as served:
        node = call(served.url, "graph_node", graph_json, "decoder:0:embedding:0")
        edge = call(served.url, "graph_edge", graph_json, "decoder:1:attention:0->0")
        for answer in (node, edge):
            assert _refused(answer, "^Something went wrong on our side") == GENERIC_ERROR
        choices = call(served.url, "graph_choices", graph_json)  # the next request is served
        assert choices.event == "complete", choices.data
    log = served.log.read_text(errors="replace")
    assert "unexpected error in node_details" in log and "unexpected error in edge_details" in log, log[-3000:]
    assert log.count("RuntimeError: injected failure") == 2


@pytest.mark.server
def test_json_integers_of_5000_digits_are_the_one_refusal_on_every_json_endpoint(app: AppProcess) -> None:
    """Python's int parser refuses more than 4,300 digits with a ValueError: every endpoint reading result JSON
    answers its one refusal line (never the generic error, never a logged traceback), and serves the next request."""
    result, graph = huge_integer_json(), huge_integer_json(valid_graph())
    assert _attribute(app, "tiny-ioi-gpt2", IOI).event == "complete"  # warm-up, when this test runs alone
    log_start, rss_before = len(app.log.read_bytes()), app.rss_mib()
    answers = {
        "export": call(app.url, "export", "Compare", PAGE, "", "", result, ""),
        "export_intervene": call(app.url, "export", "Intervene", PAGE, "", "", "", result),
        "graph_choices": call(app.url, "graph_choices", graph),
        "graph_selection": call(app.url, "graph_selection", graph, "decoder:0:embedding:0"),
        "graph_node": call(app.url, "graph_node", graph, "decoder:0:embedding:0"),
        "graph_edge": call(app.url, "graph_edge", graph, "decoder:1:attention:0->0"),
        "graph_rewalk": call(app.url, "graph_rewalk", graph, 0.2),
        "graph_ablate": call(app.url, "graph_ablate", *_ablate(graph)),
        "compare_faithfulness": call(app.url, "compare_faithfulness", result, True),
        "push": call(app.url, "push", "Attribute", result, "", "", "alice/demo", "hf_token", ""),
        "push_intervene": call(app.url, "push", "Intervene", "", "", "", "alice/demo", "hf_token", result),
    }
    for api, answer in answers.items():
        assert _refused(answer, RESULT_REFUSAL), api
    # The slider's endpoint does not trust the shown graph: an unreadable one is recomputed from the inputs.
    recomputed = call(app.url, "graph_threshold", "tiny-ioi-gpt2", IOI, "", 0.1, False, "-1", graph, *NO_LANGUAGES)
    assert recomputed.event == "complete" and ContributionGraph.from_json(recomputed.data[1]).threshold == 0.1
    assert _attribute(app, "tiny-ioi-gpt2", IOI).event == "complete"  # the next request is served
    logged = app.log.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in logged and "unexpected error" not in logged, logged[-3000:]
    growth = app.rss_mib() - rss_before
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"
