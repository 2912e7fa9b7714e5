"""Results of interventions: plain dataclasses that round-trip through JSON, drawn by exporters later.

- :class:`InterventionResult`: the prediction before and after ablating / patching some components.
- :class:`PatchingResult`: activation-patching maps ([layer x head], [layer x position], encoder
  positions), exact and by attribution patching, with their agreement.
- :class:`RouteFaithfulness`: necessity and sufficiency of a contribution-graph route against random
  edge sets of the same size and weight.
- :class:`FaithfulnessResult`: comprehensiveness, sufficiency and deletion / insertion AOPC of a
  feature-attribution result (or of a contribution graph read as token scores).

Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from attribution.results import (
    SCHEMA_VERSION,
    Provenance,
    _check_schema,
    _dump,
    _matrix_from_json,
    _matrix_to_json,
    register_schema,
)
from attribution.validation import parse_json_text, read_json_file


class _JsonResult:
    """``to_json`` / ``from_json`` for the dataclasses below (``SCHEMA`` names the JSON's schema)."""

    SCHEMA = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, "schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    def to_json(self, path: str | Path | None = None) -> str:
        return _dump(self.to_dict(), path)

    @classmethod
    def from_json(cls, text: str | bytes, *, max_bytes: int | None = None) -> Self:
        """Read JSON *text* (never a path): what a request sends."""
        return cls.from_dict(parse_json_text(text, max_bytes=max_bytes))

    @classmethod
    def from_file(cls, path: str | Path, *, max_bytes: int | None = None) -> Self:
        return cls.from_dict(read_json_file(path, max_bytes=max_bytes))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        raise NotImplementedError


def _fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class PredictionChange:
    """The next-token prediction at one position, before and after an intervention.

    ``kl_divergence`` is KL(before || after) in nats. ``top_before`` holds (token, probability) pairs,
    ``top_after`` (token, probability, change against the clean run) triples, best first.
    """

    position: int
    input_token: str
    target_token: str
    contrast_token: str | None
    probability_before: float
    probability_after: float
    logit_before: float
    logit_after: float
    logit_diff_before: float | None
    logit_diff_after: float | None
    kl_divergence: float
    top_before: list[tuple[str, float]]
    top_after: list[tuple[str, float, float]]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        kwargs = _fields(cls, data)
        kwargs["top_before"] = [tuple(p) for p in data["top_before"]]
        kwargs["top_after"] = [tuple(p) for p in data["top_after"]]
        return cls(**kwargs)


@dataclass
class InterventionResult(_JsonResult):
    """Ablating (``zero`` / ``mean``) or patching (``patch``) ``components`` on one input.

    ``mean_over`` is ``"prompts"`` (per position, over ``reference_texts``) or ``"positions"`` for
    mean ablation. ``counterfactual_*`` are the patching source. ``predictions`` has one entry per
    requested root position (decoder side: the position whose next token is predicted).
    """

    SCHEMA = "intervention"

    provenance: Provenance
    source_text: str
    target_text: str
    source_tokens: list[str]
    target_tokens: list[str]
    components: list[str]
    mode: str
    predictions: list[PredictionChange]
    mean_over: str | None = None
    reference_texts: list[str] = field(default_factory=list)
    counterfactual_text: str | None = None
    counterfactual_target: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, cls.SCHEMA, "")
        kwargs = _fields(cls, data)
        kwargs["provenance"] = Provenance(**data["provenance"])
        kwargs["predictions"] = [PredictionChange.from_dict(p) for p in data["predictions"]]
        return cls(**kwargs)


@dataclass
class PatchingMap:
    """One patching sweep: ``exact`` and ``approximate`` (attribution patching) ``[rows, columns]``.

    Values are the "logit difference recovered" of Wang et al. (2022): ``(LD(patched) - LD(base)) /
    (LD(source) - LD(base))`` where base is the run receiving the patch and source the run the
    activation comes from. ``spearman`` and ``top10_overlap`` (share of the 10 cells with the largest
    absolute exact value that are also among the approximation's 10) compare the two.
    """

    name: str  # "head", "position" or "encoder_position"
    row_label: str
    column_label: str
    row_names: list[str]
    column_names: list[str]
    exact: np.ndarray | None
    approximate: np.ndarray | None
    spearman: float | None = None
    top10_overlap: float | None = None
    seconds_exact: float | None = None
    seconds_approximate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["exact"] = _matrix_to_json(self.exact)
        data["approximate"] = _matrix_to_json(self.approximate)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        kwargs = _fields(cls, data)
        n_columns = len(data.get("column_names") or [])
        kwargs["exact"] = _matrix_from_json(data.get("exact"), n_columns)
        kwargs["approximate"] = _matrix_from_json(data.get("approximate"), n_columns)
        return cls(**kwargs)


@dataclass
class PatchingResult(_JsonResult):
    """Activation patching between a clean and a counterfactual input of the same length.

    ``direction`` ``"denoise"``: the counterfactual run receives clean activations (how much of the
    clean behaviour a component restores); ``"noise"``: the clean run receives counterfactual ones.
    The metric is the logit difference ``logit(target) - logit(contrast)`` at ``root_position``.
    ``seconds_forward`` is one plain forward pass, the unit of the maps' timings.
    """

    SCHEMA = "patching"

    provenance: Provenance
    source_text: str
    target_text: str
    counterfactual_text: str
    counterfactual_target: str
    source_tokens: list[str]
    target_tokens: list[str]
    counterfactual_source_tokens: list[str]
    counterfactual_target_tokens: list[str]
    root_position: int
    target_token: str
    contrast_token: str
    direction: str
    logit_diff_clean: float
    logit_diff_counterfactual: float
    maps: list[PatchingMap]
    seconds_forward: float | None = None

    def map(self, name: str) -> PatchingMap:
        for item in self.maps:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["maps"] = [m.to_dict() for m in self.maps]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, cls.SCHEMA, "")
        kwargs = _fields(cls, data)
        kwargs["provenance"] = Provenance(**data["provenance"])
        kwargs["maps"] = [PatchingMap.from_dict(m) for m in data["maps"]]
        return cls(**kwargs)


@dataclass
class EdgeSetEffect:
    """The prediction after an edge-set intervention; ``seed`` None for the route itself."""

    n_edges: int
    total_weight: float
    probability: float
    logit_diff: float | None
    seed: int | None = None


@dataclass
class RouteFaithfulness(_JsonResult):
    """Is a contribution-graph route necessary and sufficient for the prediction at ``root_position``?

    Necessity: every attention edge of the route is removed (zero ablation of its term, all heads).
    Sufficiency: at each block where the route has attention edges, every attention edge *not* in the
    route is removed. Random baselines do the same with edge sets drawn among the other attention
    edges, matched to the route's edges one by one by weight (same size, close total weight).
    """

    SCHEMA = "route-faithfulness"

    provenance: Provenance
    source_text: str
    target_text: str
    source_tokens: list[str]
    target_tokens: list[str]
    root_position: int
    target_token: str
    contrast_token: str | None
    threshold: float
    route_edges: list[str]
    probability_clean: float
    logit_diff_clean: float | None
    necessity: EdgeSetEffect
    sufficiency: EdgeSetEffect
    random_necessity: list[EdgeSetEffect]
    random_sufficiency: list[EdgeSetEffect]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, cls.SCHEMA, "")
        kwargs = _fields(cls, data)
        kwargs["provenance"] = Provenance(**data["provenance"])
        for name in ("necessity", "sufficiency"):
            kwargs[name] = EdgeSetEffect(**data[name])
        for name in ("random_necessity", "random_sufficiency"):
            kwargs[name] = [EdgeSetEffect(**e) for e in data[name]]
        return cls(**kwargs)

    def summary(self) -> dict[str, float | None]:
        """Drops (necessity) and kept shares (sufficiency) of the probability, route vs mean of random sets."""

        def mean(values: list[float]) -> float | None:
            return float(np.mean(values)) if values else None

        p = self.probability_clean
        return {
            "necessity_drop": p - self.necessity.probability,
            "random_necessity_drop": mean([p - e.probability for e in self.random_necessity]),
            "sufficiency_kept": self.sufficiency.probability / p if p > 0 else None,
            "random_sufficiency_kept": mean([e.probability / p for e in self.random_sufficiency]) if p > 0 else None,
        }


@dataclass
class FaithfulnessResult(_JsonResult):
    """ERASER faithfulness (DeYoung et al. 2020) and deletion / insertion AOPC of one explanation.

    For each explained step and each fraction k of ``fractions`` of the removable input tokens,
    ranked by the absolute attribution: comprehensiveness ``p(y) - p(y | top-k removed)``,
    sufficiency ``p(y) - p(y | only top-k kept)``; each averaged over the fractions (AOPC form) and
    the steps. ``deletion`` / ``insertion``: the mean probability of the explained token after removing
    the most important tokens first / after restoring them into a fully replaced input, at each
    fraction, and their areas (mean over fractions). ``replacement`` says what a removed token becomes.
    ``random_*`` is the same with a random ranking (mean over ``random_seeds``).
    """

    SCHEMA = "faithfulness"

    provenance: Provenance
    explanation: str  # the Inseq method, or "contribution graph"
    source_text: str
    target_text: str
    replacement: str
    fractions: list[float]
    n_steps: int
    comprehensiveness: float
    sufficiency: float
    deletion_curve: list[float]
    insertion_curve: list[float]
    deletion_aopc: float
    insertion_aopc: float
    random_comprehensiveness: float | None = None
    random_sufficiency: float | None = None
    random_seeds: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _check_schema(data, cls.SCHEMA, "")
        kwargs = _fields(cls, data)
        kwargs["provenance"] = Provenance(**data["provenance"])
        return cls(**kwargs)


for _cls in (InterventionResult, PatchingResult, RouteFaithfulness, FaithfulnessResult):
    register_schema(_cls.SCHEMA, _cls)
