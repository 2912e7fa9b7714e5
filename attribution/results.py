"""The data model: plain, JSON-serialisable results that flow from the library to exporters.

Results carry everything needed to draw them (tokens, scores, provenance), so an export can be
made later from a saved JSON file without the model. Score matrices are numpy arrays in memory
(NaN where a cell has no value, e.g. future positions of a causal model) and lists with ``null``
in JSON. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from attribution.errors import InvalidInputError, ResultFormatError
from attribution.validation import (
    ObjectReader,
    expect_bool,
    expect_choice,
    expect_free_form,
    expect_int,
    expect_list,
    expect_list_of,
    expect_number,
    expect_number_matrix,
    expect_object,
    expect_str,
    expect_str_list,
    expect_str_map,
    expect_tuple,
    fail,
    field_path,
    get_field,
    parse_json_text,
    read_json_file,
)

ModelKind = Literal["causal", "seq2seq"]
MODEL_KINDS = ("causal", "seq2seq")
#: How a tokenizer spells tokens: byte-level BPE (GPT-2, Llama-3: ``Ġ`` for a space), SentencePiece
#: (Marian, T5, Llama-2: ``▁``), or as plain text (word-level, WordPiece).
TokenizerStyle = Literal["byte_level", "sentencepiece", "plain"]
TOKENIZER_STYLES = ("byte_level", "sentencepiece", "plain")
SCHEMA_VERSION = 1

_VERSIONED_LIBRARIES = ("attribution-explorer", "torch", "transformers", "inseq", "captum")


def library_versions(names: tuple[str, ...] = _VERSIONED_LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries a result depends on (missing ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    """Creation timestamp in ISO 8601, UTC, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def matrix_to_json(matrix: np.ndarray | None) -> list[list[float | None]] | None:
    if matrix is None:
        return None
    return [[None if math.isnan(v) else float(v) for v in row] for row in np.asarray(matrix, dtype=float)]


def matrix_from_json(rows: list[list[float | None]] | None, n_columns: int) -> np.ndarray | None:
    if rows is None:
        return None
    if not rows:
        return np.zeros((0, n_columns))
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)


class JsonResult:
    """What every result class shares: a ``schema`` name in its JSON, and reading / writing that JSON.

    Reading is always checked: :meth:`from_json` takes JSON *text* (never a path: what a request
    sends), :meth:`from_file` a saved file (the CLI and the Python API); both bound the size before
    parsing, and ``from_dict`` (each class's own) checks every field with the readers of
    :mod:`attribution.validation`, so a malformed JSON is one :class:`ResultFormatError` naming the field.
    """

    SCHEMA: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, "schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        raise NotImplementedError

    @classmethod
    def from_json(cls, text: str | bytes, *, max_bytes: int | None = None) -> Self:
        """Read JSON *text* (never a path: use :meth:`from_file`) of at most ``max_bytes`` (default 64 MiB)."""
        return cls.from_dict(parse_json_text(text, max_bytes=max_bytes))

    @classmethod
    def from_file(cls, path: str | Path, *, max_bytes: int | None = None) -> Self:
        """Read a saved JSON file (the CLI and Python API; the Space never reads paths a request names)."""
        return cls.from_dict(read_json_file(path, max_bytes=max_bytes))

    @classmethod
    def _reader(cls, data: Any, path: str) -> ObjectReader:
        """A reader of ``data``'s fields, once it is an object of this class's schema (not newer than this reads)."""
        data = expect_object(data, path or "result")
        schema = data.get("schema")
        if schema != cls.SCHEMA:
            shown = repr(schema) if isinstance(schema, str) and len(schema) < 40 else type(schema).__name__
            raise ResultFormatError(f"expected a {cls.SCHEMA!r} JSON, got schema {shown}")
        version = expect_int(data.get("schema_version", 0), field_path(path, "schema_version"), minimum=0)
        if version > SCHEMA_VERSION:
            raise ResultFormatError(
                f"this {cls.SCHEMA} was written by a newer Attribution Explorer "
                f"(schema {version} > {SCHEMA_VERSION}); upgrade to read it"
            )
        return ObjectReader(data, path)


@dataclass
class Provenance:
    """Where a result came from: shown on every exported page and stored in its metadata."""

    model_id: str
    model_revision: str | None
    model_kind: ModelKind
    model_type: str  # transformers' config.model_type, e.g. "gpt2", "marian"
    library_versions: dict[str, str] = field(default_factory=library_versions)
    created_at: str = field(default_factory=utc_now)
    #: How the tokens are spelled, so viewers can show them as text (None: unknown, guessed from the tokens).
    tokenizer_style: TokenizerStyle | None = None
    #: Language codes a multilingual translation model was run with (NLLB ``eng_Latn``), None when not set.
    source_language: str | None = None
    target_language: str | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str = "provenance") -> Self:
        """Read and check a provenance object (``path`` names it in error messages)."""
        data = expect_object(data, path)
        return cls(
            model_id=expect_str(get_field(data, "model_id", path), f"{path}.model_id"),
            model_revision=expect_str(data.get("model_revision"), f"{path}.model_revision", optional=True),
            model_kind=expect_choice(get_field(data, "model_kind", path), f"{path}.model_kind", MODEL_KINDS),
            model_type=expect_str(get_field(data, "model_type", path), f"{path}.model_type"),
            library_versions=expect_str_map(data.get("library_versions", {}), f"{path}.library_versions", expect_str),
            created_at=expect_str(data.get("created_at", ""), f"{path}.created_at"),
            tokenizer_style=None
            if data.get("tokenizer_style") is None
            else expect_choice(data["tokenizer_style"], f"{path}.tokenizer_style", TOKENIZER_STYLES),
            source_language=expect_str(data.get("source_language"), f"{path}.source_language", optional=True),
            target_language=expect_str(data.get("target_language"), f"{path}.target_language", optional=True),
        )


@dataclass
class AttributionResult(JsonResult):
    """One feature-attribution run (Inseq) on one input.

    Token layout follows Inseq. ``target_tokens`` is the whole target side: for a causal model the
    prompt followed by the generated (or forced) continuation, for a seq2seq model the decoder
    sequence (including the decoder start token when the tokenizer shows it). The attributed steps
    are ``target_tokens[attributed_start:]``; each has one column in the score matrices.

    - ``source_scores``: ``[len(source_tokens), n_steps]`` for seq2seq, ``None`` for causal models.
    - ``target_scores``: ``[len(target_tokens), n_steps]``, NaN where a token is not a prefix of the
      step (future positions).
    - ``step_scores``: name (e.g. ``"probability"``) → ``n_steps`` values.
    - ``source_word_ids`` / ``target_word_ids``: per token, the index of the whitespace word of the
      input text it belongs to (``None`` for special tokens), used to merge subwords into words.
    """

    SCHEMA: ClassVar[str] = "attribution-result"

    provenance: Provenance
    method: str
    method_params: dict[str, Any]
    source_text: str
    target_text: str
    source_tokens: list[str]
    target_tokens: list[str]
    attributed_start: int
    source_scores: np.ndarray | None
    target_scores: np.ndarray | None
    step_scores: dict[str, list[float]] = field(default_factory=dict)
    contrast_target: str | None = None
    source_word_ids: list[int | None] | None = None
    target_word_ids: list[int | None] | None = None

    @property
    def generated_tokens(self) -> list[str]:
        """The attributed target tokens: one per column of the score matrices."""
        return self.target_tokens[self.attributed_start :]

    @property
    def n_steps(self) -> int:
        return len(self.target_tokens) - self.attributed_start

    @property
    def is_signed(self) -> bool:
        """True when scores take both signs (diverging colour scale), False when all are >= 0."""
        values = [m for m in (self.source_scores, self.target_scores) if m is not None and m.size]
        return any(bool(np.nanmin(m) < 0) for m in values if not np.all(np.isnan(m)))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["source_scores"] = matrix_to_json(self.source_scores)
        data["target_scores"] = matrix_to_json(self.target_scores)
        data["step_scores"] = {
            name: [None if math.isnan(v) else float(v) for v in values] for name, values in self.step_scores.items()
        }
        return {"schema": self.SCHEMA, "schema_version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Build from parsed JSON, checking every field (:class:`ResultFormatError` names the first bad one)."""
        fields = cls._reader(data, path)
        get, at = fields.get, fields.at

        source_tokens = expect_str_list(get("source_tokens"), at("source_tokens"))
        target_tokens = expect_str_list(get("target_tokens"), at("target_tokens"))
        start = expect_int(get("attributed_start"), at("attributed_start"), minimum=0, maximum=len(target_tokens))
        n_steps = len(target_tokens) - start
        source_rows = expect_number_matrix(
            get("source_scores"), at("source_scores"), (len(source_tokens), n_steps), optional=True
        )
        target_rows = expect_number_matrix(
            get("target_scores"), at("target_scores"), (len(target_tokens), n_steps), optional=True
        )
        step_scores = expect_str_map(
            get("step_scores", {}),
            at("step_scores"),
            lambda values, where: expect_list_of(
                values,
                where,
                lambda v, at: math.nan if v is None else expect_number(v, at),
                length=n_steps,
                per="attributed step",
            ),
        )
        method_params = expect_free_form(get("method_params", {}), at("method_params"))
        expect_object(method_params, at("method_params"))
        return cls(
            provenance=Provenance.from_dict(get("provenance"), at("provenance")),
            method=expect_str(get("method"), at("method")),
            method_params=method_params,
            source_text=expect_str(get("source_text"), at("source_text")),
            target_text=expect_str(get("target_text"), at("target_text")),
            source_tokens=source_tokens,
            target_tokens=target_tokens,
            attributed_start=start,
            source_scores=matrix_from_json(source_rows, n_steps),
            target_scores=matrix_from_json(target_rows, n_steps),
            step_scores=step_scores,
            contrast_target=expect_str(get("contrast_target", None), at("contrast_target"), optional=True),
            source_word_ids=_word_ids(get("source_word_ids", None), at("source_word_ids"), source_tokens),
            target_word_ids=_word_ids(get("target_word_ids", None), at("target_word_ids"), target_tokens),
        )


def _word_ids(value: Any, path: str, tokens: list[str]) -> list[int | None] | None:
    return expect_list_of(
        value,
        path,
        lambda v, at: None if v is None else expect_int(v, at, minimum=0),
        length=len(tokens),
        per="token",
        optional=True,
    )


NodeKind = Literal["embedding", "after_attention", "after_cross_attention", "ffn", "after_ffn"]
EdgeKind = Literal["attention", "cross_attention", "residual", "ffn"]
Side = Literal["encoder", "decoder"]


@dataclass
class GraphNode:
    """A residual-stream state (or an FFN block output) at one token and layer.

    ``layer`` 0 is the embedding; block ``l`` (1-based) produces ``after_attention``,
    (``after_cross_attention`` for seq2seq decoders), ``ffn`` and ``after_ffn`` nodes at layer ``l``.
    ``token_index`` indexes ``ContributionGraph.source_tokens`` on the encoder side and
    ``ContributionGraph.target_tokens`` on the decoder side (the only side of a causal model).
    Logit-lens lists hold ``(token, value)`` pairs, best first.
    """

    id: str
    side: Side
    layer: int
    kind: NodeKind
    token_index: int
    top_tokens: list[tuple[str, float]] = field(default_factory=list)
    promoted: list[tuple[str, float]] = field(default_factory=list)
    suppressed: list[tuple[str, float]] = field(default_factory=list)
    top_neurons: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class GraphEdge:
    """Information flowing from node ``source`` into node ``target`` with a proximity ``weight``.

    Weights of all edges entering one node (before pruning) are >= 0 and sum to 1.
    ``head_weights`` (attention edges only) splits ``weight`` over heads and sums to it.
    """

    source: str
    target: str
    kind: EdgeKind
    weight: float
    head_weights: list[float] | None = None


@dataclass
class ContributionGraph(JsonResult):
    """Information-flow routes (Ferrando & Voita, 2024) for one input.

    Holds the union of the routes from each token in ``root_tokens`` (decoder-side token indices)
    at ``threshold``: every stored edge has ``weight >= threshold``, so a viewer can re-filter at
    any higher threshold by walking down from a root again.
    """

    SCHEMA: ClassVar[str] = "contribution-graph"

    provenance: Provenance
    source_text: str
    target_text: str
    source_tokens: list[str]
    target_tokens: list[str]
    n_layers: int
    n_heads: int
    threshold: float
    renormalized: bool
    root_tokens: list[int]
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    n_encoder_layers: int = 0
    final_norm_in_logit_lens: bool = True

    def node(self, node_id: str) -> GraphNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def at_threshold(self, threshold: float) -> ContributionGraph:
        """The same roots' routes at a higher ``threshold``, re-walked from the stored edges (no model needed).

        Exact: every edge a route keeps at ``threshold`` >= ``self.threshold`` is stored here, and walking
        down from the roots over the edges at least that strong reaches the same nodes in the same order as
        tracing the model again. Not possible below the stored threshold, nor on a renormalised graph
        (whose weights depend on the threshold it was cut at): those need the model.
        """
        threshold = float(threshold)
        if self.renormalized or not self.threshold <= threshold < 1.0:
            raise InvalidInputError(
                f"A threshold of {threshold:g} cannot be re-walked from this graph (cut at {self.threshold:g}"
                f"{', renormalised' if self.renormalized else ''}): compute it again."
            )
        incoming: dict[str, list[int]] = {}
        for index, edge in enumerate(self.edges):
            if edge.weight >= threshold:
                incoming.setdefault(edge.target, []).append(index)
        n_tokens = len(self.target_tokens)
        roots = [f"decoder:{self.n_layers}:after_ffn:{i % n_tokens}" for i in self.root_tokens]
        reached, stack, kept = set(roots), list(roots), set()
        while stack:
            for index in incoming.get(stack.pop(), []):
                kept.add(index)
                source = self.edges[index].source
                if source not in reached:
                    reached.add(source)
                    stack.append(source)
        edges = [edge for index, edge in enumerate(self.edges) if index in kept]
        order = list(dict.fromkeys([*roots, *(e.target for e in edges), *(e.source for e in edges)]))
        by_id = {node.id: node for node in self.nodes}
        return dataclasses.replace(
            self, threshold=threshold, nodes=[by_id[i] for i in order if i in by_id], edges=edges
        )

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Build from parsed JSON, checking every field and that edges join nodes of this graph."""
        fields = cls._reader(data, path)
        get, at = fields.get, fields.at

        source_tokens = expect_str_list(get("source_tokens"), at("source_tokens"))
        target_tokens = expect_str_list(get("target_tokens"), at("target_tokens"))
        n_layers = expect_int(get("n_layers"), at("n_layers"), minimum=0)
        n_encoder_layers = expect_int(get("n_encoder_layers", 0), at("n_encoder_layers"), minimum=0)
        n_heads = expect_int(get("n_heads"), at("n_heads"), minimum=1)
        tokens = {"encoder": len(source_tokens), "decoder": len(target_tokens)}
        layers = {"encoder": n_encoder_layers, "decoder": n_layers}
        nodes = expect_list_of(get("nodes"), at("nodes"), lambda n, at: _read_node(n, at, tokens=tokens, layers=layers))
        node_ids: set[str] = set()
        for i, node in enumerate(nodes):
            if node.id in node_ids:
                raise fail(f"{at('nodes')}[{i}].id", f"repeats node id {node.id!r}")
            node_ids.add(node.id)
        edges = expect_list_of(
            get("edges"), at("edges"), lambda e, at: _read_edge(e, at, node_ids=node_ids, n_heads=n_heads)
        )
        threshold = expect_number(get("threshold"), at("threshold"))
        if not 0.0 <= threshold < 1.0:
            raise fail(at("threshold"), f"must be in [0, 1), not {threshold}")
        return cls(
            provenance=Provenance.from_dict(get("provenance"), at("provenance")),
            source_text=expect_str(get("source_text"), at("source_text")),
            target_text=expect_str(get("target_text"), at("target_text")),
            source_tokens=source_tokens,
            target_tokens=target_tokens,
            n_layers=n_layers,
            n_heads=n_heads,
            threshold=threshold,
            renormalized=expect_bool(get("renormalized"), at("renormalized")),
            root_tokens=expect_list_of(
                get("root_tokens"),
                at("root_tokens"),
                lambda v, at: expect_int(v, at, minimum=-len(target_tokens), maximum=len(target_tokens) - 1),
            ),
            nodes=nodes,
            edges=edges,
            n_encoder_layers=n_encoder_layers,
            final_norm_in_logit_lens=expect_bool(get("final_norm_in_logit_lens", True), at("final_norm_in_logit_lens")),
        )


NODE_KINDS = ("embedding", "after_attention", "after_cross_attention", "ffn", "after_ffn")
EDGE_KINDS = ("attention", "cross_attention", "residual", "ffn")
SIDES = ("encoder", "decoder")


def _pairs(value: Any, path: str, read_item: Any) -> list[tuple[Any, float]]:
    return expect_list_of(
        value, path, lambda item, at: expect_tuple(item, at, (read_item, expect_number), per="item and value")
    )


def _read_node(data: Any, path: str, *, tokens: dict[str, int], layers: dict[str, int]) -> GraphNode:
    data = expect_object(data, path)
    side = expect_choice(get_field(data, "side", path), f"{path}.side", SIDES)
    return GraphNode(
        id=expect_str(get_field(data, "id", path), f"{path}.id"),
        side=side,
        layer=expect_int(get_field(data, "layer", path), f"{path}.layer", minimum=0, maximum=layers[side]),
        kind=expect_choice(get_field(data, "kind", path), f"{path}.kind", NODE_KINDS),
        token_index=expect_int(
            get_field(data, "token_index", path), f"{path}.token_index", minimum=0, maximum=tokens[side] - 1
        ),
        top_tokens=_pairs(data.get("top_tokens", []), f"{path}.top_tokens", expect_str),
        promoted=_pairs(data.get("promoted", []), f"{path}.promoted", expect_str),
        suppressed=_pairs(data.get("suppressed", []), f"{path}.suppressed", expect_str),
        top_neurons=_pairs(
            data.get("top_neurons", []), f"{path}.top_neurons", lambda v, at: expect_int(v, at, minimum=0)
        ),
    )


def _read_edge(data: Any, path: str, *, node_ids: set[str], n_heads: int) -> GraphEdge:
    data = expect_object(data, path)
    ends = {}
    for end in ("source", "target"):
        ends[end] = expect_str(get_field(data, end, path), f"{path}.{end}")
        if ends[end] not in node_ids:
            raise fail(f"{path}.{end}", f"names node {ends[end][:80]!r}, which is not in `nodes`")
    weight = expect_number(get_field(data, "weight", path), f"{path}.weight")
    if weight < 0:
        raise fail(f"{path}.weight", f"must be at least 0, not {weight}")
    return GraphEdge(
        source=ends["source"],
        target=ends["target"],
        kind=expect_choice(get_field(data, "kind", path), f"{path}.kind", EDGE_KINDS),
        weight=weight,
        head_weights=expect_list_of(
            data.get("head_weights"), f"{path}.head_weights", expect_number, length=n_heads, per="head", optional=True
        ),
    )


@dataclass
class Comparison(JsonResult):
    """Several attribution results on the same input, with agreement numbers.

    ``labels[i]`` names ``results[i]`` (e.g. "saliency" or "opus-mt / attention").
    ``rank_correlation[i][j]`` is Spearman's rho between results i and j over their shared cells
    (``None`` where undefined, e.g. constant scores).
    ``aer[i]`` is the alignment error rate of result i against ``gold_alignment`` (Pharaoh format,
    word level) when one is given, else ``None``.
    """

    SCHEMA: ClassVar[str] = "comparison"

    results: list[AttributionResult]
    labels: list[str]
    rank_correlation: list[list[float | None]]
    gold_alignment: str | None = None
    aer: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "results": [r.to_dict() for r in self.results],
            "labels": self.labels,
            "rank_correlation": self.rank_correlation,
            "gold_alignment": self.gold_alignment,
            "aer": self.aer,
        }

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Build from parsed JSON, checking every result and that labels and matrices have one entry per result."""
        fields = cls._reader(data, path)
        get, at = fields.get, fields.at

        results = expect_list_of(get("results"), at("results"), AttributionResult.from_dict)
        n = len(results)
        per = "compared result"
        aer = expect_list_of(get("aer", []), at("aer"), lambda v, at: expect_number(v, at, optional=True))
        if aer:
            expect_list(aer, at("aer"), length=n, per=per)
        return cls(
            results=results,
            labels=expect_str_list(get("labels"), at("labels"), length=n, per=per),
            rank_correlation=expect_list_of(
                get("rank_correlation"),
                at("rank_correlation"),
                lambda row, at: expect_list_of(
                    row, at, lambda v, where: expect_number(v, where, optional=True), length=n, per=per
                ),
                length=n,
                per=per,
            ),
            gold_alignment=expect_str(get("gold_alignment", None), at("gold_alignment"), optional=True),
            aer=aer,
        )


ResultType = AttributionResult | ContributionGraph | Comparison
_SCHEMAS: dict[str, type[JsonResult]] = {cls.SCHEMA: cls for cls in (AttributionResult, ContributionGraph, Comparison)}


def register_schema(cls: type[JsonResult]) -> None:
    """Let :func:`load_result` read another result class by its ``SCHEMA`` (interventions register theirs)."""
    _SCHEMAS[cls.SCHEMA] = cls


def load_result(text: str | bytes, *, max_bytes: int | None = None) -> ResultType:
    """Read any result from JSON *text* (never a path) into the matching dataclass, checking its schema."""
    return _from_any(parse_json_text(text, max_bytes=max_bytes))


def load_result_file(path: str | Path, *, max_bytes: int | None = None) -> ResultType:
    """Read any result from a saved JSON file (the CLI and the Python API) into the matching dataclass."""
    return _from_any(read_json_file(path, max_bytes=max_bytes))


def _from_any(data: Any) -> ResultType:
    import attribution.interventions.results  # noqa: F401  (registers the intervention schemas)

    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in _SCHEMAS:
        shown = repr(schema) if isinstance(schema, str) and len(schema) < 40 else type(schema).__name__
        raise ResultFormatError(
            f"not an Attribution Explorer result (schema {shown}); expected one of {', '.join(sorted(_SCHEMAS))}"
        )
    return _SCHEMAS[schema].from_dict(data)
