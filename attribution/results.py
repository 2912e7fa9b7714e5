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
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np

from attribution.display import NotebookDisplay
from attribution.errors import InvalidInputError, ResultFormatError
from attribution.frames import data_frame, token_columns
from attribution.result_kinds import load_result as load_result  # re-exported: where callers have always found them
from attribution.result_kinds import load_result_file as load_result_file
from attribution.tokenizer_style import TOKENIZER_STYLES as TOKENIZER_STYLES
from attribution.tokenizer_style import TokenizerStyle as TokenizerStyle
from attribution.tokenizer_style import result_style
from attribution.validation import (
    ObjectReader,
    expect_int,
    expect_list,
    expect_list_of,
    expect_number,
    expect_object,
    expect_str,
    expect_tuple,
    fail,
    parse_json_text,
    read_json_file,
)

if TYPE_CHECKING:
    import pandas as pd

ModelKind = Literal["causal", "seq2seq"]
MODEL_KINDS: tuple[ModelKind, ...] = ("causal", "seq2seq")
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


class JsonResult(NotebookDisplay):
    """What every result class shares: a ``schema`` name in its JSON, and reading / writing that JSON.

    Reading is always checked: :meth:`from_json` takes JSON *text* (never a path: what a request
    sends), :meth:`from_file` a saved file (the CLI and the Python API); both bound the size before
    parsing, and ``from_dict`` (each class's own) checks every field with an
    :class:`~attribution.validation.ObjectReader`, so a malformed JSON is one :class:`ResultFormatError`
    naming the field. A class is one kind of result of :mod:`attribution.result_kinds`, and shows its figure in
    a notebook (:mod:`attribution.display`).
    """

    SCHEMA: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        # every result class is a dataclass (this is their base, which mypy cannot know to be one)
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
        f = ObjectReader(data, path)
        schema = f.get("schema", None)
        if schema != cls.SCHEMA:
            shown = repr(schema) if isinstance(schema, str) and len(schema) < 40 else type(schema).__name__
            raise ResultFormatError(f"expected a {cls.SCHEMA!r} JSON, got schema {shown}")
        version = f.whole("schema_version", minimum=0, default=0)
        if version > SCHEMA_VERSION:
            raise ResultFormatError(
                f"this {cls.SCHEMA} was written by a newer Attribution Explorer "
                f"(schema {version} > {SCHEMA_VERSION}); upgrade to read it"
            )
        return f


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
        f = ObjectReader(data, path)
        return cls(
            model_id=f.text("model_id"),
            model_revision=f.text("model_revision", optional=True),
            model_kind=f.choice("model_kind", MODEL_KINDS),
            model_type=f.text("model_type"),
            library_versions=f.text_map("library_versions", expect_str, default={}),
            created_at=f.text("created_at", default=""),
            tokenizer_style=f.choice("tokenizer_style", TOKENIZER_STYLES, optional=True),
            source_language=f.text("source_language", optional=True),
            target_language=f.text("target_language", optional=True),
        )


@dataclass
class ModelResult(JsonResult):
    """A result one model computed on one input: its :class:`Provenance` (first in its JSON), and the input.

    The input's texts and tokens (``source_text``, ``target_text``, ``source_tokens``,
    ``target_tokens``) are declared by each class, those of them it has, where its JSON has them (a
    dataclass's field order is its JSON's key order, which stays as it was written);
    :meth:`_read_input` reads them, and the provenance, for every class.
    """

    provenance: Provenance

    @classmethod
    def _read_input(cls, f: ObjectReader) -> dict[str, Any]:
        """The provenance and the texts and tokens this class declares, checked, by field name."""
        declared = {item.name for item in dataclasses.fields(cls)}
        fields: dict[str, Any] = {"provenance": f.field("provenance", Provenance.from_dict)}
        fields.update({name: f.text(name) for name in ("source_text", "target_text") if name in declared})
        fields.update({name: f.texts(name) for name in ("source_tokens", "target_tokens") if name in declared})
        return fields


@dataclass
class AttributionResult(ModelResult):
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

    def to_dataframe(self) -> pd.DataFrame:
        """One row per scored (attributing token, attributed step) pair: source rows, then target rows, step by step.

        ``side`` (``"source"`` / ``"target"``: which matrix), ``position`` (the token's index on its side),
        ``token`` / ``token_raw``, ``word`` (its word of the text, ``<NA>`` for special tokens), ``step`` (the
        column), ``target_position``, ``target_token`` / ``target_token_raw`` (the attributed token), ``score``,
        then the step's scores as ``step_<name>``. Cells without a value (NaN: future positions, a side the
        method does not attribute) have no row. ``df.pivot(index="position", columns="step", values="score")``
        on one side gives its matrix back.
        """
        style = result_style(self)
        sides = [
            ("source", self.source_scores, self.source_tokens, self.source_word_ids),
            ("target", self.target_scores, self.target_tokens, self.target_word_ids),
        ]
        cells: dict[str, list[Any]] = {"side": [], "position": [], "step": [], "score": []}
        tokens_at: list[str] = []
        words: list[int | None] = []
        for side, scores, tokens, word_ids in sides:
            if scores is None:
                continue
            steps, positions = np.nonzero(np.isfinite(scores.T))
            cells["side"] += [side] * len(steps)
            cells["position"] += positions.tolist()
            cells["step"] += steps.tolist()
            cells["score"] += scores[positions, steps].tolist()
            tokens_at += [tokens[i] for i in positions]
            words += [None if word_ids is None else word_ids[i] for i in positions]
        targets = [self.attributed_start + step for step in cells["step"]]
        columns = {
            "side": cells["side"],
            "position": cells["position"],
            **token_columns("token", tokens_at, style),
            "word": words,
            "step": cells["step"],
            "target_position": targets,
            **token_columns("target_token", [self.target_tokens[i] for i in targets], style),
            "score": cells["score"],
            **{f"step_{name}": [values[step] for step in cells["step"]] for name, values in self.step_scores.items()},
        }
        return data_frame(columns, integers=["word"])

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
        f = cls._reader(data, path)
        given = cls._read_input(f)
        n_source, n_target = len(given["source_tokens"]), len(given["target_tokens"])
        start = f.whole("attributed_start", minimum=0, maximum=n_target)
        n_steps = n_target - start
        # The matrices may be null but not missing.
        source_rows = f.matrix("source_scores", (n_source, n_steps), optional=True, default=...)
        target_rows = f.matrix("target_scores", (n_target, n_steps), optional=True, default=...)
        step_scores = f.text_map(
            "step_scores",
            lambda values, where: expect_list_of(values, where, _number_or_nan, length=n_steps, per="attributed step"),
            default={},
        )
        method_params = expect_object(f.free_form("method_params", default={}), f.at("method_params"))
        return cls(
            **given,
            method=f.text("method"),
            method_params=method_params,
            attributed_start=start,
            source_scores=matrix_from_json(source_rows, n_steps),
            target_scores=matrix_from_json(target_rows, n_steps),
            step_scores=step_scores,
            contrast_target=f.text("contrast_target", optional=True),
            source_word_ids=f.list_of("source_word_ids", _word_id, length=n_source, per="token", optional=True),
            target_word_ids=f.list_of("target_word_ids", _word_id, length=n_target, per="token", optional=True),
        )


def _number_or_nan(value: Any, path: str) -> float:
    return math.nan if value is None else expect_number(value, path)


def _number_or_null(value: Any, path: str) -> float | None:
    return expect_number(value, path, optional=True)


def _word_id(value: Any, path: str) -> int | None:
    """The index of the input word a token belongs to; null for special tokens."""
    return None if value is None else expect_int(value, path, minimum=0)


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


@dataclass(slots=True)
class GraphEdge:
    """Information flowing from node ``source`` into node ``target`` with a proximity ``weight``.

    Weights of all edges entering one node (before pruning) are >= 0 and sum to 1.
    ``head_weights`` (attention edges only) splits ``weight`` over heads and sums to it.
    Slotted: a graph holds up to millions of edges, made faster and walked faster by the cyclic collector
    without a ``__dict__`` each.
    """

    source: str
    target: str
    kind: EdgeKind
    weight: float
    head_weights: list[float] | None = None


@dataclass
class ContributionGraph(ModelResult):
    """Information-flow routes (Ferrando & Voita, 2024) for one input.

    Holds the union of the routes from each token in ``root_tokens`` (decoder-side token indices)
    at ``threshold``: every stored edge has ``weight >= threshold``, so a viewer can re-filter at
    any higher threshold by walking down from a root again.
    """

    SCHEMA: ClassVar[str] = "contribution-graph"

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

    def at_threshold(self, threshold: float, root_tokens: Sequence[int] | None = None) -> ContributionGraph:
        """The routes of ``root_tokens`` (default: the same roots) at a higher ``threshold``, re-walked from the
        stored edges (no model needed).

        Exact: every edge a route keeps at ``threshold`` >= ``self.threshold`` from a root of this graph is
        stored here, and walking down from the roots (any of this graph's roots) over the edges at least that
        strong reaches the same nodes in the same order as tracing the model again. Not possible below the
        stored threshold, from a token that is not one of its roots, nor on a renormalised graph (whose
        weights depend on the threshold it was cut at): those need the model.
        """
        threshold = float(threshold)
        if self.renormalized or not self.threshold <= threshold < 1.0:
            raise InvalidInputError(
                f"A threshold of {threshold:g} cannot be re-walked from this graph (cut at {self.threshold:g}"
                f"{', renormalised' if self.renormalized else ''}): compute it again."
            )
        n_tokens = len(self.target_tokens)
        stored = sorted({i % n_tokens for i in self.root_tokens})
        given = [int(i) for i in (self.root_tokens if root_tokens is None else root_tokens)]
        wanted = list(dict.fromkeys(i % n_tokens for i in given))
        if not given or any(not -n_tokens <= i < n_tokens for i in given) or not set(wanted) <= set(stored):
            raise InvalidInputError(
                f"This graph holds the routes from tokens {stored}; those from {wanted} need it computed again."
            )
        roots = [node_id("decoder", self.n_layers, "after_ffn", i) for i in wanted]
        kept = {id(edge) for edge in route_edges(self.edges, roots, threshold)}
        edges = [edge for edge in self.edges if id(edge) in kept]
        order = list(dict.fromkeys([*roots, *(e.target for e in edges), *(e.source for e in edges)]))
        by_id = {node.id: node for node in self.nodes}
        kept_roots = self.root_tokens if root_tokens is None else wanted
        return dataclasses.replace(
            self,
            threshold=threshold,
            root_tokens=list(kept_roots),
            nodes=[by_id[i] for i in order if i in by_id],
            edges=edges,
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per stored edge, in the graph's order: ``source`` and ``target`` (node ids), ``kind``,
        ``weight``, then for each end (``source_…``, ``target_…``) its ``side``, ``layer``, node ``kind``,
        ``position`` (token index on its side) and ``token`` / ``token_raw``; ``head_weights`` (a list per
        attention edge, else None). ``df.groupby("target_layer").weight.sum()`` and the like."""
        style = result_style(self)
        nodes = {node.id: node for node in self.nodes}
        tokens = {"encoder": self.source_tokens, "decoder": self.target_tokens}
        columns: dict[str, list[Any]] = {
            "source": [edge.source for edge in self.edges],
            "target": [edge.target for edge in self.edges],
            "kind": [edge.kind for edge in self.edges],
            "weight": [edge.weight for edge in self.edges],
        }
        for end in ("source", "target"):
            ends = [nodes[node_id] for node_id in columns[end]]
            columns[f"{end}_side"] = [node.side for node in ends]
            columns[f"{end}_layer"] = [node.layer for node in ends]
            columns[f"{end}_kind"] = [node.kind for node in ends]
            columns[f"{end}_position"] = [node.token_index for node in ends]
            columns.update(token_columns(f"{end}_token", [tokens[node.side][node.token_index] for node in ends], style))
        columns["head_weights"] = [edge.head_weights for edge in self.edges]
        return data_frame(columns)

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Build from parsed JSON, checking every field and that edges join nodes of this graph."""
        f = cls._reader(data, path)
        given = cls._read_input(f)
        n_target = len(given["target_tokens"])
        n_layers = f.whole("n_layers", minimum=0)
        n_encoder_layers = f.whole("n_encoder_layers", minimum=0, default=0)
        n_heads = f.whole("n_heads", minimum=1)
        tokens = {"encoder": len(given["source_tokens"]), "decoder": n_target}
        layers = {"encoder": n_encoder_layers, "decoder": n_layers}
        nodes = f.list_of("nodes", lambda n, at: _read_node(n, at, tokens=tokens, layers=layers))
        node_ids: set[str] = set()
        for i, node in enumerate(nodes):
            if node.id in node_ids:
                raise fail(f"{f.at('nodes')}[{i}].id", f"repeats node id {node.id!r}")
            node_ids.add(node.id)
        edges = f.list_of("edges", lambda e, at: _read_edge(e, at, node_ids=node_ids, n_heads=n_heads))
        threshold = f.number("threshold")
        if not 0.0 <= threshold < 1.0:
            raise fail(f.at("threshold"), f"must be in [0, 1), not {threshold}")
        return cls(
            **given,
            n_layers=n_layers,
            n_heads=n_heads,
            threshold=threshold,
            renormalized=f.flag("renormalized"),
            root_tokens=f.list_of(
                "root_tokens", lambda v, at: expect_int(v, at, minimum=-n_target, maximum=n_target - 1)
            ),
            nodes=nodes,
            edges=edges,
            n_encoder_layers=n_encoder_layers,
            final_norm_in_logit_lens=f.flag("final_norm_in_logit_lens", default=True),
        )


NODE_KINDS: tuple[NodeKind, ...] = ("embedding", "after_attention", "after_cross_attention", "ffn", "after_ffn")
EDGE_KINDS: tuple[EdgeKind, ...] = ("attention", "cross_attention", "residual", "ffn")
SIDES: tuple[Side, ...] = ("encoder", "decoder")


def node_id(side: Side, layer: int, kind: str, token: int | str) -> str:
    """Stable node ids such as ``decoder:3:after_ffn:7``; layer 0 is always the embedding.

    The one place ids are spelled: the graph engine, the re-walk, the alignment and the interventions'
    component names all build them here (``token`` may be a component's ``*`` or ``3,4``)."""
    if layer == 0:
        kind = "embedding"
    return f"{side}:{layer}:{kind}:{token}"


def route_edges(edges: Iterable[GraphEdge], start_node_ids: Iterable[str], threshold: float) -> list[GraphEdge]:
    """Edges on the routes from ``start_node_ids`` at ``threshold``: walking down from them, every edge of
    weight >= ``threshold`` that enters a node reached, breadth first (the order the walk finds them in).

    The one route walk: :meth:`ContributionGraph.at_threshold`, the exported graph's initial state and its
    threshold slider (``exporters.graph``'s JavaScript twin) all walk this way."""
    incoming: dict[str, list[GraphEdge]] = {}
    for edge in edges:
        incoming.setdefault(edge.target, []).append(edge)
    starts = list(start_node_ids)
    seen, queue, kept = set(starts), deque(starts), []
    while queue:
        for edge in incoming.get(queue.popleft(), []):
            if edge.weight >= threshold:
                kept.append(edge)
                if edge.source not in seen:
                    seen.add(edge.source)
                    queue.append(edge.source)
    return kept


def _pair(read_item: Callable[[Any, str], Any]) -> Callable[[Any, str], tuple]:
    """A reader of one ``[item, value]`` pair of a logit-lens or neuron list."""
    return lambda pair, at: expect_tuple(pair, at, (read_item, expect_number), per="item and value")


_TOKEN_PAIR = _pair(expect_str)
_NEURON_PAIR = _pair(lambda value, at: expect_int(value, at, minimum=0))


def _read_node(data: Any, path: str, *, tokens: dict[str, int], layers: dict[str, int]) -> GraphNode:
    f = ObjectReader(data, path)
    side = f.choice("side", SIDES)
    return GraphNode(
        id=f.text("id"),
        side=side,
        layer=f.whole("layer", minimum=0, maximum=layers[side]),
        kind=f.choice("kind", NODE_KINDS),
        token_index=f.whole("token_index", minimum=0, maximum=tokens[side] - 1),
        top_tokens=f.list_of("top_tokens", _TOKEN_PAIR, default=[]),
        promoted=f.list_of("promoted", _TOKEN_PAIR, default=[]),
        suppressed=f.list_of("suppressed", _TOKEN_PAIR, default=[]),
        top_neurons=f.list_of("top_neurons", _NEURON_PAIR, default=[]),
    )


def _read_edge(data: Any, path: str, *, node_ids: set[str], n_heads: int) -> GraphEdge:
    f = ObjectReader(data, path)
    ends = {}
    for end in ("source", "target"):
        ends[end] = f.text(end)
        if ends[end] not in node_ids:
            raise fail(f.at(end), f"names node {ends[end][:80]!r}, which is not in `nodes`")
    weight = f.number("weight")
    if weight < 0:
        raise fail(f.at("weight"), f"must be at least 0, not {weight}")
    return GraphEdge(
        source=ends["source"],
        target=ends["target"],
        kind=f.choice("kind", EDGE_KINDS),
        weight=weight,
        head_weights=f.list_of("head_weights", expect_number, length=n_heads, per="head", optional=True),
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

    def to_dataframe(self) -> pd.DataFrame:
        """Every compared result's rows (:meth:`AttributionResult.to_dataframe`) under its ``label``, with its
        ``aer`` against the gold alignment (None without one): ``df.groupby("label")``, or one pivot per label."""
        import pandas as pd  # data_frame has said so clearly if it is missing

        frames = [result.to_dataframe() for result in self.results]
        aers = self.aer or [None] * len(self.results)
        for label, aer_value, frame in zip(self.labels, aers, frames, strict=True):
            frame.insert(0, "label", label)
            frame.insert(1, "aer", aer_value)
        return pd.concat(frames, ignore_index=True)

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
        f = cls._reader(data, path)
        results = f.list_of("results", AttributionResult.from_dict)
        n = len(results)
        per = "compared result"
        aer = f.list_of("aer", _number_or_null, default=[])
        if aer:
            expect_list(aer, f.at("aer"), length=n, per=per)
        return cls(
            results=results,
            labels=f.texts("labels", length=n, per=per),
            rank_correlation=f.list_of(
                "rank_correlation",
                lambda row, at: expect_list_of(row, at, _number_or_null, length=n, per=per),
                length=n,
                per=per,
            ),
            gold_alignment=f.text("gold_alignment", optional=True),
            aer=aer,
        )


ResultType = AttributionResult | ContributionGraph | Comparison
