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
from typing import Any, Literal, Self

import numpy as np

ModelKind = Literal["causal", "seq2seq"]
#: How a tokenizer spells tokens: byte-level BPE (GPT-2, Llama-3: ``Ġ`` for a space), SentencePiece
#: (Marian, T5, Llama-2: ``▁``), or as plain text (word-level, WordPiece).
TokenizerStyle = Literal["byte_level", "sentencepiece", "plain"]
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


def _matrix_to_json(matrix: np.ndarray | None) -> list[list[float | None]] | None:
    if matrix is None:
        return None
    return [[None if math.isnan(v) else float(v) for v in row] for row in np.asarray(matrix, dtype=float)]


def _matrix_from_json(rows: list[list[float | None]] | None) -> np.ndarray | None:
    if rows is None:
        return None
    if not rows:
        return np.zeros((0, 0))
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)


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


@dataclass
class AttributionResult:
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
        data["source_scores"] = _matrix_to_json(self.source_scores)
        data["target_scores"] = _matrix_to_json(self.target_scores)
        data["step_scores"] = {
            name: [None if math.isnan(v) else float(v) for v in values] for name, values in self.step_scores.items()
        }
        return {"schema": "attribution-result", "schema_version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, "attribution-result")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["provenance"] = Provenance(**data["provenance"])
        kwargs["source_scores"] = _matrix_from_json(data["source_scores"])
        kwargs["target_scores"] = _matrix_from_json(data["target_scores"])
        kwargs["step_scores"] = {
            name: [math.nan if v is None else float(v) for v in values]
            for name, values in data.get("step_scores", {}).items()
        }
        return cls(**kwargs)

    def to_json(self, path: str | Path | None = None) -> str:
        return _dump(self.to_dict(), path)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Self:
        return cls.from_dict(_load(text_or_path))


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
class ContributionGraph:
    """Information-flow routes (Ferrando & Voita, 2024) for one input.

    Holds the union of the routes from each token in ``root_tokens`` (decoder-side token indices)
    at ``threshold``: every stored edge has ``weight >= threshold``, so a viewer can re-filter at
    any higher threshold by walking down from a root again.
    """

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

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "contribution-graph", "schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, "contribution-graph")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["provenance"] = Provenance(**data["provenance"])
        kwargs["nodes"] = [
            GraphNode(
                **{
                    **n,
                    "top_tokens": [tuple(p) for p in n.get("top_tokens", [])],
                    "promoted": [tuple(p) for p in n.get("promoted", [])],
                    "suppressed": [tuple(p) for p in n.get("suppressed", [])],
                    "top_neurons": [tuple(p) for p in n.get("top_neurons", [])],
                }
            )
            for n in data["nodes"]
        ]
        kwargs["edges"] = [GraphEdge(**e) for e in data["edges"]]
        return cls(**kwargs)

    def to_json(self, path: str | Path | None = None) -> str:
        return _dump(self.to_dict(), path)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Self:
        return cls.from_dict(_load(text_or_path))


@dataclass
class Comparison:
    """Several attribution results on the same input, with agreement numbers.

    ``labels[i]`` names ``results[i]`` (e.g. "saliency" or "opus-mt / attention").
    ``rank_correlation[i][j]`` is Spearman's rho between results i and j over their shared cells
    (``None`` where undefined, e.g. constant scores).
    ``aer[i]`` is the alignment error rate of result i against ``gold_alignment`` (Pharaoh format,
    word level) when one is given, else ``None``.
    """

    results: list[AttributionResult]
    labels: list[str]
    rank_correlation: list[list[float | None]]
    gold_alignment: str | None = None
    aer: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "comparison",
            "schema_version": SCHEMA_VERSION,
            "results": [r.to_dict() for r in self.results],
            "labels": self.labels,
            "rank_correlation": self.rank_correlation,
            "gold_alignment": self.gold_alignment,
            "aer": self.aer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, "comparison")
        return cls(
            results=[AttributionResult.from_dict(r) for r in data["results"]],
            labels=data["labels"],
            rank_correlation=data["rank_correlation"],
            gold_alignment=data.get("gold_alignment"),
            aer=data.get("aer", []),
        )

    def to_json(self, path: str | Path | None = None) -> str:
        return _dump(self.to_dict(), path)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Self:
        return cls.from_dict(_load(text_or_path))


ResultType = AttributionResult | ContributionGraph | Comparison
_SCHEMAS: dict[str, type] = {
    "attribution-result": AttributionResult,
    "contribution-graph": ContributionGraph,
    "comparison": Comparison,
}


def load_result(text_or_path: str | Path) -> ResultType:
    """Read any result JSON (file path or JSON text) into the matching dataclass."""
    data = _load(text_or_path)
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in _SCHEMAS:
        raise ValueError(f"not an Attribution Explorer result (schema {schema!r}); expected one of {sorted(_SCHEMAS)}")
    return _SCHEMAS[schema].from_dict(data)


def _check_schema(data: dict[str, Any], expected: str) -> None:
    if data.get("schema") != expected:
        raise ValueError(f"expected a {expected!r} JSON, got schema {data.get('schema')!r}")
    if data.get("schema_version", 0) > SCHEMA_VERSION:
        raise ValueError(
            f"this {expected} was written by a newer Attribution Explorer "
            f"(schema {data['schema_version']} > {SCHEMA_VERSION}); upgrade to read it"
        )


def _dump(data: dict[str, Any], path: str | Path | None) -> str:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _load(text_or_path: str | Path) -> Any:
    if isinstance(text_or_path, Path) or not str(text_or_path).lstrip().startswith("{"):
        return json.loads(Path(text_or_path).read_text(encoding="utf-8"))
    return json.loads(text_or_path)
