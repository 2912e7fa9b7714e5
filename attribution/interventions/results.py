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
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from attribution.frames import data_frame, token_columns
from attribution.results import ModelResult, matrix_from_json, matrix_to_json
from attribution.tokenizer_style import result_style
from attribution.validation import ObjectReader, expect_number, expect_share, expect_str, expect_tuple, fail

if TYPE_CHECKING:
    import pandas as pd

#: What an intervention does to a component (see :mod:`attribution.interventions.ablation`).
MODES: tuple[str, ...] = ("zero", "mean", "patch", "steer")
#: What a mean ablation averages over.
MEAN_OVER: tuple[str, ...] = ("prompts", "positions")
#: Patching maps (see :mod:`attribution.interventions.sweeps`) and their directions.
MAP_NAMES: tuple[str, ...] = ("head", "cross_head", "encoder_head", "position", "encoder_position")
DIRECTIONS: tuple[str, ...] = ("denoise", "noise")


def _position(f: ObjectReader, name: str, tokens: list[str]) -> int:
    """An index into ``tokens``."""
    return f.whole(name, minimum=0, maximum=len(tokens) - 1)


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
    def from_dict(cls, data: Any, path: str, *, target_tokens: list[str]) -> Self:
        f = ObjectReader(data, path)

        def top(name: str, readers: tuple, per: str) -> list[tuple]:
            return f.list_of(name, lambda item, at: expect_tuple(item, at, readers, per=per))

        probability = (expect_str, expect_share)
        return cls(
            position=_position(f, "position", target_tokens),
            input_token=f.text("input_token"),
            target_token=f.text("target_token"),
            contrast_token=f.text("contrast_token", optional=True),
            probability_before=f.share("probability_before"),
            probability_after=f.share("probability_after"),
            logit_before=f.number("logit_before"),
            logit_after=f.number("logit_after"),
            logit_diff_before=f.number("logit_diff_before", optional=True),
            logit_diff_after=f.number("logit_diff_after", optional=True),
            kl_divergence=f.number("kl_divergence"),
            top_before=top("top_before", probability, "token and probability"),
            top_after=top("top_after", (*probability, expect_number), "token, probability and change"),
        )


@dataclass
class InterventionResult(ModelResult):
    """Ablating (``zero`` / ``mean``), patching (``patch``) or steering (``steer``, SAE features) ``components``.

    ``mean_over`` is ``"prompts"`` (per position, over ``reference_texts``) or ``"positions"`` for
    mean ablation. ``counterfactual_*`` are the patching source. ``predictions`` has one entry per
    requested root position (decoder side: the position whose next token is predicted).
    """

    SCHEMA: ClassVar[str] = "intervention"

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
    #: how much of each SAE feature's decoder direction mode ``steer`` added (None for the other modes)
    strength: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object; ``strength`` only when steering, so other results read as before."""
        data = super().to_dict()
        if data["strength"] is None:
            del data["strength"]
        return data

    def to_dataframe(self) -> pd.DataFrame:
        """One row per predicted position: ``position``, ``input_token`` (the token there), ``target_token`` and
        ``contrast_token`` (text and ``_raw``), the probability, logit and logit difference ``_before`` and
        ``_after`` the intervention, ``probability_change`` (after − before) and ``kl_divergence``."""
        style = result_style(self)
        rows = self.predictions
        return data_frame(
            {
                "position": [row.position for row in rows],
                **token_columns("input_token", [row.input_token for row in rows], style),
                **token_columns("target_token", [row.target_token for row in rows], style),
                **token_columns("contrast_token", [row.contrast_token for row in rows], style),
                "probability_before": [row.probability_before for row in rows],
                "probability_after": [row.probability_after for row in rows],
                "probability_change": [row.probability_after - row.probability_before for row in rows],
                "logit_before": [row.logit_before for row in rows],
                "logit_after": [row.logit_after for row in rows],
                "logit_diff_before": [row.logit_diff_before for row in rows],
                "logit_diff_after": [row.logit_diff_after for row in rows],
                "kl_divergence": [row.kl_divergence for row in rows],
            }
        )

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        f = cls._reader(data, path)
        given = cls._read_input(f)
        target_tokens = given["target_tokens"]
        return cls(
            **given,
            components=f.texts("components"),
            mode=f.choice("mode", MODES),
            predictions=f.list_of(
                "predictions",
                lambda item, at: PredictionChange.from_dict(item, at, target_tokens=target_tokens),
            ),
            mean_over=f.choice("mean_over", MEAN_OVER, optional=True),
            reference_texts=f.texts("reference_texts", default=[]),
            counterfactual_text=f.text("counterfactual_text", optional=True),
            counterfactual_target=f.text("counterfactual_target", optional=True),
            strength=f.number("strength", optional=True),
        )


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
        data["exact"] = matrix_to_json(self.exact)
        data["approximate"] = matrix_to_json(self.approximate)
        return data

    @classmethod
    def from_dict(cls, data: Any, path: str, *, n_tokens: dict[str, int]) -> Self:
        """Check the map, and that its matrices have one row per row name and one column per column name
        (a position map: one column per token of its side, ``n_tokens["decoder"]`` or ``["encoder"]``)."""
        f = ObjectReader(data, path)
        name = f.choice("name", MAP_NAMES)
        side = {"position": "decoder", "encoder_position": "encoder"}.get(name)
        row_names = f.texts("row_names")
        column_names = f.texts("column_names", length=n_tokens[side] if side else None, per=f"{side} token")
        shape = (len(row_names), len(column_names))

        def matrix(key: str) -> np.ndarray | None:
            return matrix_from_json(f.matrix(key, shape, optional=True, per="column name"), shape[1])

        return cls(
            name=name,
            row_label=f.text("row_label"),
            column_label=f.text("column_label"),
            row_names=row_names,
            column_names=column_names,
            exact=matrix("exact"),
            approximate=matrix("approximate"),
            spearman=f.number("spearman", optional=True, minimum=-1.0, maximum=1.0),
            top10_overlap=f.share("top10_overlap", optional=True),
            seconds_exact=f.number("seconds_exact", optional=True, minimum=0.0),
            seconds_approximate=f.number("seconds_approximate", optional=True, minimum=0.0),
        )


@dataclass
class PatchingResult(ModelResult):
    """Activation patching between a clean and a counterfactual input of the same length.

    ``direction`` ``"denoise"``: the counterfactual run receives clean activations (how much of the
    clean behaviour a component restores); ``"noise"``: the clean run receives counterfactual ones.
    The metric is the logit difference ``logit(target) - logit(contrast)`` at ``root_position``.
    ``seconds_forward`` is one plain forward pass, the unit of the maps' timings.
    """

    SCHEMA: ClassVar[str] = "patching"

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

    def to_dataframe(self) -> pd.DataFrame:
        """One row per cell of every map: ``map_name``, ``row_label`` and ``row`` (e.g. ``layer``, ``"2"``),
        ``column_label`` and ``column``, and for position maps the ``position`` and its ``token`` / ``token_raw``
        (``<NA>`` / None in head maps); ``exact`` and ``approximate`` (attribution patching) logit difference
        recovered (NaN where not computed). ``df[df.map_name == "head"].pivot(index="row", columns="column",
        values="exact")`` gives a map back."""
        style = result_style(self)
        columns: dict[str, list[Any]] = {
            name: []
            for name in ("map_name", "row_label", "row", "column_label", "column", "position", "token", "exact")
        }
        columns["approximate"] = []
        for item in self.maps:
            side = {"position": self.target_tokens, "encoder_position": self.source_tokens}.get(item.name)
            n_rows, n_columns = len(item.row_names), len(item.column_names)
            for name, values in (("exact", item.exact), ("approximate", item.approximate)):
                cells = np.full((n_rows, n_columns), np.nan) if values is None else values
                columns[name] += cells.ravel().tolist()
            columns["map_name"] += [item.name] * (n_rows * n_columns)
            columns["row_label"] += [item.row_label] * (n_rows * n_columns)
            columns["column_label"] += [item.column_label] * (n_rows * n_columns)
            columns["row"] += [row for row in item.row_names for _ in item.column_names]
            columns["column"] += list(item.column_names) * n_rows
            columns["position"] += list(range(n_columns) if side else [None] * n_columns) * n_rows
            columns["token"] += list(side if side else [None] * n_columns) * n_rows
        tokens = token_columns("token", columns.pop("token"), style)
        approximate = columns.pop("approximate")
        exact = columns.pop("exact")
        return data_frame({**columns, **tokens, "exact": exact, "approximate": approximate}, integers=["position"])

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["maps"] = [m.to_dict() for m in self.maps]
        return data

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Check every field; the counterfactual has as many tokens as the input (patching needs it)."""
        f = cls._reader(data, path)
        given = cls._read_input(f)
        source_tokens, target_tokens = given["source_tokens"], given["target_tokens"]
        n_tokens = {"encoder": len(source_tokens), "decoder": len(target_tokens)}
        per = "token of the input"
        return cls(
            **given,
            counterfactual_text=f.text("counterfactual_text"),
            counterfactual_target=f.text("counterfactual_target"),
            counterfactual_source_tokens=f.texts("counterfactual_source_tokens", length=len(source_tokens), per=per),
            counterfactual_target_tokens=f.texts("counterfactual_target_tokens", length=len(target_tokens), per=per),
            root_position=_position(f, "root_position", target_tokens),
            target_token=f.text("target_token"),
            contrast_token=f.text("contrast_token"),
            direction=f.choice("direction", DIRECTIONS),
            logit_diff_clean=f.number("logit_diff_clean"),
            logit_diff_counterfactual=f.number("logit_diff_counterfactual"),
            maps=f.list_of("maps", lambda item, at: PatchingMap.from_dict(item, at, n_tokens=n_tokens)),
            seconds_forward=f.number("seconds_forward", optional=True, minimum=0.0),
        )


@dataclass
class EdgeSetEffect:
    """The prediction after an edge-set intervention; ``seed`` None for the route itself."""

    n_edges: int
    total_weight: float
    probability: float
    logit_diff: float | None
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str, *, n_edges: int) -> Self:
        """Check the effect; its edge set has ``n_edges`` edges (the route's size: random sets are matched to it)."""
        f = ObjectReader(data, path)
        size = f.whole("n_edges", minimum=0)
        if size != n_edges:
            raise fail(f.at("n_edges"), f"must be the route's size, {n_edges}, not {size}")
        return cls(
            n_edges=size,
            total_weight=f.number("total_weight", minimum=0.0),
            probability=f.share("probability"),
            logit_diff=f.number("logit_diff", optional=True),
            seed=f.whole("seed", optional=True, minimum=0),
        )


@dataclass
class RouteFaithfulness(ModelResult):
    """Is a contribution-graph route necessary and sufficient for the prediction at ``root_position``?

    Necessity: every attention edge of the route is removed (zero ablation of its term, all heads).
    Sufficiency: at each block where the route has attention edges, every attention edge *not* in the
    route is removed. Random baselines do the same with edge sets drawn among the other attention
    edges, matched to the route's edges one by one by weight (same size, close total weight).
    """

    SCHEMA: ClassVar[str] = "route-faithfulness"

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
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Check every field; every edge set (the route's and the random ones) has as many edges as the route."""
        f = cls._reader(data, path)
        given = cls._read_input(f)
        route_edges = f.texts("route_edges")
        n = len(route_edges)

        def effect(name: str) -> EdgeSetEffect:
            return f.field(name, lambda item, at: EdgeSetEffect.from_dict(item, at, n_edges=n))

        def effects(name: str, length: int | None = None) -> list[EdgeSetEffect]:
            return f.list_of(
                name,
                lambda item, at: EdgeSetEffect.from_dict(item, at, n_edges=n),
                length=length,
                per="random seed",
            )

        threshold = f.share("threshold")
        random_necessity = effects("random_necessity")
        return cls(
            **given,
            root_position=_position(f, "root_position", given["target_tokens"]),
            target_token=f.text("target_token"),
            contrast_token=f.text("contrast_token", optional=True),
            threshold=threshold,
            route_edges=route_edges,
            probability_clean=f.share("probability_clean"),
            logit_diff_clean=f.number("logit_diff_clean", optional=True),
            necessity=effect("necessity"),
            sufficiency=effect("sufficiency"),
            random_necessity=random_necessity,
            random_sufficiency=effects("random_sufficiency", len(random_necessity)),
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per edge set: ``test`` (``necessity``: the set removed; ``sufficiency``: only the set kept),
        ``edges`` (``route`` or ``random``), ``seed`` (``<NA>`` for the route), ``n_edges``, ``total_weight``,
        the ``probability`` of the target after it, its ``share`` of the clean probability, and ``logit_diff``."""
        sets = [
            (test, kind, effect)
            for test, route, randoms in (
                ("necessity", self.necessity, self.random_necessity),
                ("sufficiency", self.sufficiency, self.random_sufficiency),
            )
            for kind, effect in [("route", route), *(("random", item) for item in randoms)]
        ]
        p = self.probability_clean
        return data_frame(
            {
                "test": [test for test, _, _ in sets],
                "edges": [kind for _, kind, _ in sets],
                "seed": [effect.seed for _, _, effect in sets],
                "n_edges": [effect.n_edges for _, _, effect in sets],
                "total_weight": [effect.total_weight for _, _, effect in sets],
                "probability": [effect.probability for _, _, effect in sets],
                "share": [effect.probability / p if p > 0 else None for _, _, effect in sets],
                "logit_diff": [effect.logit_diff for _, _, effect in sets],
            },
            integers=["seed"],
        )

    def table(self) -> list[tuple[str, float | str | None, float | str | None]]:
        """What the app and the exported page show, per row (what, the route, the random edge sets): the drop
        and the kept share of the probability, the edge sets' sizes and weights, and the logit differences when
        a contrast token was given. Numbers are raw (each shows them in its own format)."""
        summary = self.summary()

        def mean_logit_diff(effects: list[EdgeSetEffect]) -> float | None:
            values = [e.logit_diff for e in effects if e.logit_diff is not None]
            return sum(values) / len(values) if values else None

        rows: list[tuple[str, float | str | None, float | str | None]] = [
            ("necessity: drop of p", summary["necessity_drop"], summary["random_necessity_drop"]),
            ("sufficiency: share of p kept", summary["sufficiency_kept"], summary["random_sufficiency_kept"]),
            (
                "edges (total weight)",
                f"{self.necessity.n_edges} ({self.necessity.total_weight:.3g})",
                ", ".join(f"{e.total_weight:.3g}" for e in self.random_necessity) or "—",
            ),
        ]
        if self.logit_diff_clean is not None:
            rows += [
                ("logit difference, edges removed", self.necessity.logit_diff, mean_logit_diff(self.random_necessity)),
                (
                    "logit difference, only these edges kept",
                    self.sufficiency.logit_diff,
                    mean_logit_diff(self.random_sufficiency),
                ),
            ]
        return rows

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
class FaithfulnessResult(ModelResult):
    """ERASER faithfulness (DeYoung et al. 2020) and deletion / insertion AOPC of one explanation.

    For each explained step and each fraction k of ``fractions`` of the removable input tokens,
    ranked by the absolute attribution: comprehensiveness ``p(y) - p(y | top-k removed)``,
    sufficiency ``p(y) - p(y | only top-k kept)``; each averaged over the fractions (AOPC form) and
    the steps. ``deletion`` / ``insertion``: the mean probability of the explained token after removing
    the most important tokens first / after restoring them into a fully replaced input, at each
    fraction, and their areas (mean over fractions). ``replacement`` says what a removed token becomes.
    ``random_*`` is the same with a random ranking (mean over ``random_seeds``).
    """

    SCHEMA: ClassVar[str] = "faithfulness"

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

    @property
    def curve_fractions(self) -> list[float]:
        """The share of the input removed (deletion) or restored (insertion) at each point of the curves: evenly
        spaced from 0 to 1 (``fractions`` are the ERASER scores' own, not the curves')."""
        n = len(self.deletion_curve)
        return [i / (n - 1) for i in range(n)] if n > 1 else [0.0] * n

    def to_dataframe(self) -> pd.DataFrame:
        """The deletion and insertion curves, one row per point (``fraction`` of the input removed / restored):
        the mean probability of the explained tokens after ``deletion`` and after ``insertion``. The scalars
        (ERASER comprehensiveness and sufficiency, the AOPC areas) are the result's own fields."""
        return data_frame(
            {"fraction": self.curve_fractions, "deletion": self.deletion_curve, "insertion": self.insertion_curve}
        )

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        """Check every field; the deletion and insertion curves have one point per curve fraction each."""
        f = cls._reader(data, path)
        given = cls._read_input(f)
        deletion = f.list_of("deletion_curve", expect_share)
        return cls(
            **given,
            explanation=f.text("explanation"),
            replacement=f.text("replacement"),
            fractions=f.list_of("fractions", expect_share),
            n_steps=f.whole("n_steps", minimum=1),
            comprehensiveness=f.number("comprehensiveness"),
            sufficiency=f.number("sufficiency"),
            deletion_curve=deletion,
            insertion_curve=f.list_of(
                "insertion_curve",
                expect_share,
                length=len(deletion),
                per="deletion point",
            ),
            deletion_aopc=f.share("deletion_aopc"),
            insertion_aopc=f.share("insertion_aopc"),
            random_comprehensiveness=f.number("random_comprehensiveness", optional=True),
            random_sufficiency=f.number("random_sufficiency", optional=True),
            random_seeds=f.whole("random_seeds", minimum=0),
        )
