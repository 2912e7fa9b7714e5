"""The hostile-input corpus: what an attacker (or a broken client) sends, with what the user must see.

One list of cases per kind of input, used by the command-line tests (``tests/space/cli/test_hostile_cli.py``)
and by the live-app tests (``tests/space/gradio_app/test_space_hardening.py``), so both face the same strings: server
paths where JSON text belongs, ``/dev/zero``, oversize and wrong-typed JSON, lone surrogates (what
invalid UTF-8 becomes), model ids that are paths, corrupt weights. ``expect`` is a regular expression
the single line shown to the user must match (the library's detailed message; the app shows one
fixed refusal for every bad result JSON, see ``RESULT_REFUSAL``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.results import AttributionResult, Comparison, ContributionGraph
from tests.support.synthetic_results import (
    synthetic_attribution,
    synthetic_faithfulness,
    synthetic_graph,
    synthetic_intervention,
    synthetic_patching,
    synthetic_route_faithfulness,
)

#: What the app answers for any result JSON it refuses (the cause is logged, never shown).
RESULT_REFUSAL = r"is not a result of this app"


@dataclass(frozen=True)
class Case:
    name: str
    value: Any
    expect: str  # regex for the one line the user sees (library / CLI wording)


def valid_attribution() -> AttributionResult:
    return synthetic_attribution("causal", n_prompt=4, n_generated=3)


def valid_graph() -> ContributionGraph:
    return synthetic_graph("causal", n_tokens=6, n_layers=2)


def valid_comparison() -> Comparison:
    first, second = synthetic_attribution("seq2seq", seed=1), synthetic_attribution("seq2seq", seed=2)
    return Comparison([first, second], ["saliency", "attention"], [[1.0, 0.25], [0.25, 1.0]])


def _mutated(result: Any, change: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads(result.to_json())  # what travels: lists, not tuples
    change(data)
    return json.dumps(data)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change setting ``data[a][b]...`` for ``path`` 'a.b' (list indices as digits)."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def result_json_cases(*, max_bytes: int, server_file: Path) -> list[Case]:
    """Result-JSON inputs (/export, /graph_choices, /graph_node, /graph_edge, ``export FILE``).

    ``server_file`` is an existing file on the server holding a valid result: sending its path
    instead of JSON must not read it. ``max_bytes`` is the deployment's cap: one case is valid JSON
    just over it.
    """
    attribution, graph, comparison = valid_attribution(), valid_graph(), valid_comparison()
    n_target = len(attribution.target_tokens)
    oversize = json.dumps({"schema": "attribution-result", "padding": "x" * max_bytes})
    return [
        Case("path of an existing server file", "/etc/passwd", r"not valid JSON"),
        Case("path of another user's result file", str(server_file), r"not valid JSON"),
        Case("path of a missing file", "/no/such/result.json", r"not valid JSON"),
        Case("/dev/zero", "/dev/zero", r"not valid JSON"),
        Case("oversize JSON", oversize, r"larger than the .* accepted"),
        Case("not JSON at all", "{not json", r"not valid JSON"),
        Case("deeply nested JSON", "[" * 100_000 + "]" * 100_000, r"nested too deeply"),
        Case("NaN literal", attribution.to_json().replace('"attributed_start": 4', '"attributed_start": NaN'), r"NaN"),
        Case("unknown schema", json.dumps({"schema": "something-else"}), r"not an Attribution Explorer result"),
        Case("a JSON list", "[1, 2, 3]", r"not an Attribution Explorer result"),
        Case("schema as a list", json.dumps({"schema": ["attribution-result"]}), r"not an Attribution Explorer result"),
        Case(
            "tokens as integers",
            _mutated(attribution, _set("target_tokens", list(range(n_target)))),
            r"`target_tokens\[0\]` must be a string, not a number",
        ),
        Case(
            "attributed_start as a string",
            _mutated(attribution, _set("attributed_start", "4")),
            r"`attributed_start` must be a whole number, not a string",
        ),
        Case(
            "attributed_start out of range",
            _mutated(attribution, _set("attributed_start", n_target + 5)),
            rf"`attributed_start` must be at most {n_target}",
        ),
        Case(
            "step_scores as a list",
            _mutated(attribution, _set("step_scores", [0.5, 0.25])),
            r"`step_scores` must be an object, not a list",
        ),
        Case(
            "method_params as a list",
            _mutated(attribution, _set("method_params", ["n_steps", 50])),
            r"`method_params` must be an object, not a list",
        ),
        Case(
            "deep nesting inside method_params",
            _mutated(attribution, _set("method_params", {"x": json.loads("[" * 50 + "]" * 50)})),
            r"`method_params\.x(\[0\])+` is nested more than",
        ),
        Case(
            "score matrix with a row missing",
            _mutated(attribution, lambda data: data["target_scores"].pop()),
            rf"`target_scores` must have {n_target} rows",
        ),
        Case(
            "lone surrogate in a token",
            _mutated(attribution, _set("target_tokens.0", "\ud800")),
            r"`target_tokens\[0\]` holds a lone surrogate",
        ),
        Case(
            "comparison labels as integers",
            _mutated(comparison, _set("labels", [1, 2])),
            r"`labels\[0\]` must be a string, not a number",
        ),
        Case(
            "correlations as strings",
            _mutated(comparison, _set("rank_correlation", [["1.0", "0.25"], ["0.25", "1.0"]])),
            r"`rank_correlation\[0\]\[0\]` must be a number or null, not a string",
        ),
        Case(
            "edge pointing to a missing node",
            _mutated(graph, _set("edges.0.source", "decoder:9:after_ffn:99")),
            r"`edges\[0\]\.source` names node 'decoder:9:after_ffn:99', which is not in `nodes`",
        ),
        Case(
            "node token index out of range",
            _mutated(graph, _set("nodes.0.token_index", 10_000)),
            r"`nodes\[0\]\.token_index` must be at most",
        ),
        *intervention_json_cases(),
    ]


def intervention_json_cases() -> list[Case]:
    """Intervention results (``intervention``, ``patching``, ``route-faithfulness``, ``faithfulness``) of the
    wrong shape: every field typed, and the consistency between fields (matrix shapes vs row and column
    names, a position map vs the tokens, a counterfactual vs the input, random edge sets vs the route)."""
    intervention, patching = synthetic_intervention(n_tokens=6), synthetic_patching(n_tokens=6, n_heads=3)
    route, faithfulness = synthetic_route_faithfulness(n_edges=3), synthetic_faithfulness()
    return [
        Case(
            "intervention: provenance as a list",
            _mutated(intervention, _set("provenance", ["gpt2"])),
            r"`provenance` must be an object, not a list",
        ),
        Case(
            "intervention: provenance without its model id",
            _mutated(intervention, lambda data: data["provenance"].pop("model_id")),
            r"`provenance\.model_id` is missing",
        ),
        Case(
            "intervention: unknown mode",
            _mutated(intervention, _set("mode", "explode")),
            r"`mode` must be one of zero, mean, patch, steer, not 'explode'",
        ),
        Case(
            "intervention: predictions as an object",
            _mutated(intervention, _set("predictions", {"0": {}})),
            r"`predictions` must be a list, not an object",
        ),
        Case(
            "intervention: position out of range",
            _mutated(intervention, _set("predictions.0.position", 99)),
            r"`predictions\[0\]\.position` must be at most 5, not 99",
        ),
        Case(
            "intervention: probability above 1",
            _mutated(intervention, _set("predictions.0.probability_after", 3.5)),
            r"`predictions\[0\]\.probability_after` must be at most 1, not 3\.5",
        ),
        Case(
            "intervention: a top-token pair of three",
            _mutated(intervention, _set("predictions.0.top_before.0", ["w1", 0.5, 1])),
            r"`predictions\[0\]\.top_before\[0\]` must have 2 entries \(one per token and probability\), not 3",
        ),
        Case(
            "intervention: a token as a number",
            _mutated(intervention, _set("predictions.1.top_after.0.0", 7)),
            r"`predictions\[1\]\.top_after\[0\]\[0\]` must be a string, not a number",
        ),
        Case(
            "patching: a map value as a string",
            _mutated(patching, _set("maps.0.exact.0.0", "1.0")),
            r"`maps\[0\]\.exact\[0\]\[0\]` must be a number or null, not a string",
        ),
        Case(
            "patching: a matrix row shorter than the column names",
            _mutated(patching, lambda data: data["maps"][0]["exact"][0].pop()),
            r"`maps\[0\]\.exact\[0\]` must have 3 values \(one per column name\), not 2",
        ),
        Case(
            "patching: more row names than matrix rows",
            _mutated(patching, lambda data: data["maps"][0]["row_names"].append("3")),
            r"`maps\[0\]\.exact` must have 3 rows, not 2",
        ),
        Case(
            "patching: a position map not matching the tokens",
            _mutated(patching, lambda data: data["maps"][1]["column_names"].pop()),
            r"`maps\[1\]\.column_names` must have 6 entries \(one per decoder token\), not 5",
        ),
        Case(
            "patching: a counterfactual of another length",
            _mutated(patching, lambda data: data["counterfactual_target_tokens"].pop()),
            r"`counterfactual_target_tokens` must have 6 entries \(one per token of the input\), not 5",
        ),
        Case(
            "patching: unknown direction",
            _mutated(patching, _set("direction", 1)),
            r"`direction` must be one of denoise, noise, not a number",
        ),
        Case(
            "route faithfulness: a random edge set of another size",
            _mutated(route, _set("random_necessity.0.n_edges", 5)),
            r"`random_necessity\[0\]\.n_edges` must be the route's size, 3, not 5",
        ),
        Case(
            "route faithfulness: more random sufficiency sets than seeds",
            _mutated(route, lambda data: data["random_sufficiency"].append(data["random_sufficiency"][0])),
            r"`random_sufficiency` must have 2 entries \(one per random seed\), not 3",
        ),
        Case(
            "faithfulness: curves of different lengths",
            _mutated(faithfulness, lambda data: data["insertion_curve"].pop()),
            r"`insertion_curve` must have 11 entries \(one per deletion point\), not 10",
        ),
        Case(
            "faithfulness: comprehensiveness as a string",
            _mutated(faithfulness, _set("comprehensiveness", "high")),
            r"`comprehensiveness` must be a number, not a string",
        ),
    ]


#: Texts (prompt, source, target, contrast target, title): refused with one line, never a traceback.
TEXT_CASES = [
    Case("lone surrogate", "When Mary and \ud800 John", r"not valid text: character 15 is a lone surrogate"),
    Case("several megabytes", "the " * 1_500_000, r"characters long, far more than the \d+ tokens"),
]

#: Markup is not an error: it must come back as text (escaped wherever it is shown as HTML).
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def model_id_cases() -> list[Case]:
    """Model ids typed into the app (where custom ids are allowed): Hub ids only, never a server path."""
    return [
        Case("absolute path", "/etc", r"is not a Hugging Face model id"),
        Case("parent directory", "../../etc/passwd", r"is not a Hugging Face model id"),
        Case("home directory", "~/models", r"is not a Hugging Face model id"),
        Case("three parts", "a/b/c", r"is not a Hugging Face model id"),
        Case("very long", "a" * 5000, r"is not a Hugging Face model id"),
        # Valid Hub-id syntax that also names a folder / a file relative to the server's working directory:
        # answered like any id missing from the Hub (offline here: "unreachable"), the file is never read.
        Case(
            "relative folder", "examples/models", r"Cannot load 'examples/models': the Hugging Face Hub is unreachable"
        ),
        Case(
            "relative file",
            "space/config.json",
            r"Cannot load 'space/config.json': the Hugging Face Hub is unreachable",
        ),
        Case(
            "missing everywhere", "nobody/nothing", r"Cannot load 'nobody/nothing': the Hugging Face Hub is unreachable"
        ),
    ]


#: Hub repository ids for a push: refused before anything is written or sent.
REPO_ID_CASES = [
    Case("path", "../../etc", r"is not a Hub repo id"),
    Case("no namespace", "just-a-name", r"is not a Hub repo id"),
    Case("three parts", "a/b/c", r"is not a Hub repo id"),
    Case("very long", "alice/" + "x" * 500, r"is not a Hub repo id"),
]


def corrupt_model_folder(source: Path, destination: Path, *, how: str) -> Path:
    """A copy of the model folder ``source`` with broken weights: ``truncated`` or ``garbage``."""
    shutil.copytree(source, destination)
    weights = destination / "model.safetensors"
    if how == "truncated":
        with weights.open("r+b") as handle:
            handle.truncate(1000)
    else:
        weights.write_bytes(b"this is not a safetensors file")
    return destination


def corpus_file_cases(*, max_rows: int) -> list[Case]:
    """Uploaded corpus files (the Compare tab's ``/corpus``): ``value`` is ``(file name, bytes)``; each is refused
    with one line naming the file by its own name (never the server's upload path). A file over the upload cap
    never reaches the app: the upload itself is refused (see ``tests/space/gradio_app/test_space_uploads.py``)."""
    row = b'{"source": "the cat sees a bird", "target": "ka vesa mi avi vidas"}\n'
    return [
        Case(
            "more rows than allowed",
            ("many.jsonl", row * (max_rows + 1)),
            rf"many\.jsonl has more than {max_rows} rows",
        ),
        Case(
            "invalid UTF-8",
            ("bad-utf8.jsonl", b'\xff\xfe{"source": "a"}\n'),
            r"bad-utf8\.jsonl, line 1: not UTF-8 text",
        ),
        Case(
            "deeply nested JSON",
            ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000),
            r"deep\.jsonl, line 1: JSON nested too",
        ),
        Case(
            "a row that is a list", ("list.jsonl", b"[1, 2]\n"), r"list\.jsonl, row 1: expected an object with fields"
        ),
        Case("not JSON", ("broken.jsonl", row + b'{"source": \n'), r"broken\.jsonl, line 2: not valid JSON"),
        Case(  # undecodable bytes fail only their own cells' records; this file's first row names no usable field
            "binary as CSV",
            ("binary.csv", bytes(range(256)) * 8),
            r"binary\.csv(: not (UTF-8 text|valid CSV)| has no text field 'source')",
        ),
        Case(
            "no text field",
            ("fields.csv", b"text,target\nthe dog,ka grano\n"),
            r"fields\.csv has no text field 'source'",
        ),
        Case("junk Parquet", ("junk.parquet", b"not parquet"), r"junk\.parquet: not a readable Parquet file"),
        Case("not a data file", ("notes.txt", b"hello"), r"Invalid file type"),
    ]


#: An integer with more digits than Python converts (``int()`` raises ValueError past ``sys.get_int_max_str_digits()``,
#: 4,300): valid JSON syntax that used to escape the parser as a traceback.
HUGE_INTEGER = "9" * 5000
#: What the user is told about it (the library's wording; the app shows its one refusal for result JSON).
HUGE_INTEGER_EXPECT = r"holds a whole number of more than 4,300 digits"


def huge_integer_json(result: Any | None = None) -> str:
    """``result`` (default: a valid attribution) as JSON with a field set to :data:`HUGE_INTEGER`
    (``attributed_start`` when it has one, else an extra ``padding`` field)."""
    data = json.loads((result or valid_attribution()).to_json())
    data["attributed_start" if "attributed_start" in data else "padding"] = "HUGE-INTEGER"
    return json.dumps(data).replace('"HUGE-INTEGER"', HUGE_INTEGER)


def bad_record_lines(max_chars: int) -> list[Case]:
    """JSON lines of a corpus (bytes, as a file holds them), each bad in one field: a record that is written as
    failed with ``expect`` (its one-line error) while the run goes on. ``max_chars`` is the reader's cell cap."""
    digits = b"7" * 5000  # Python refuses to read an integer of more than 4,300 digits (ValueError)
    return [
        Case(
            "lone surrogate escape",
            b'{"source": "the cat \\ud800 sees"}',
            r"^The input text is not valid text: character 9 is a lone surrogate",
        ),
        Case(
            "invalid UTF-8 bytes",
            b'{"source": "the cat \xff\xfe sees"}',
            r"^The input text is not valid text: character 9 is a lone surrogate \(invalid UTF-8",
        ),
        Case(
            "surrogate in the target",
            b'{"source": "the cat sees a bird", "target": "ka \\udfff"}',
            r"^The target is not valid text: character 4 is a lone surrogate",
        ),
        Case(
            "integer of 5,000 digits as the text",
            b'{"source": ' + digits + b"}",
            r"^the text field 'source' holds a whole number of 5,000 digits, not text$",
        ),
        Case(
            "integer of 5,000 digits as the target",
            b'{"source": "the cat sees a bird", "target": -' + digits + b"}",
            r"^the target field 'target' holds a whole number of 5,000 digits, not text$",
        ),
        Case(
            "NUL character",
            b'{"source": "the \\u0000 cat"}',
            r"^the text field 'source' holds a NUL character \(character 5\)",
        ),
        Case(
            "over-long cell",
            b'{"source": "' + b"a " * (max_chars // 2 + 1) + b'"}',
            rf"^the text field 'source' is {max_chars // 2 * 2 + 2:,} characters long; at most {max_chars:,} are read",
        ),
        Case(
            "a list for the text",
            b'{"source": ["the", "cat"]}',
            r"^the text field 'source' holds a value of type list",
        ),
    ]


def parquet_bomb(n_chars: int = 300_000_000) -> bytes:
    """A Parquet file (about 10 kB) whose one row holds a text of ``n_chars`` characters, zstd-compressed: what
    attacked the Space (its RSS went from 794 MiB to 3.7 GiB). Built from one buffer, without a Python string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets = pa.array([0, n_chars], pa.int64()).buffers()[1]
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(b"x" * n_chars)])
    sink = pa.BufferOutputStream()
    table = pa.table({"source": text, "target": pa.array(["ka"], pa.large_string())})
    pq.write_table(table, sink, compression="zstd", use_dictionary=False, write_statistics=False)
    return sink.getvalue().to_pybytes()


#: Markup that runs script if a page puts it into HTML unescaped (as text, and inside an attribute).
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
