"""The Space's hardware profiles: what each offers, what it costs, and (on this machine, for ``cpu-basic``) how long.

    python benchmarks/space_profiles.py [--measure cpu-basic] [--per-pass cpu-basic] [--threads 2] [--startup]
                                        [--models gpt2 ...]

For every profile of ``space/config.json``, every offered run (model × method × example, the contribution graph,
the Intervene tab's patching sweep with its route test: :mod:`space.gradio_app.offered_runs`) is estimated on a
stand-in of the model built from its published config (``tests/support/published_models.py``; the same
arithmetic as the checkpoint, nothing downloaded) and held to the profile's caps. For the profiles named by
``--measure``, each run is also timed through the app's own handler (the Attribute, Contribution graph and
Intervene tabs' functions, without the time budget) on random-weight stand-ins at full size, with ``--threads``
torch threads (a free ``cpu-basic`` Space has 2 vCPUs), and compared to the profile's time budget. A timed run
explains a given target of ``max_new_tokens`` tokens (as many steps as the estimate counts, without its
generation passes: a random model's output is no text for the stand-in tokenizer).

``--per-pass`` times one forward + backward pass of each model of the profiles named (median of 3, at the
example's length plus ``max_new_tokens``) and projects each run's seconds as its estimated passes times that:
minutes cheaper than ``--measure`` where the machine is busy, and an upper bound for passes that read a prefix.

``--startup`` times ``serve`` with the measured profile until its page answers, its models loaded at start-up
from a local Hub cache of full-size stand-ins (what ``preload_from_hub`` leaves on a Space), against the same
app with ``preload_models`` off. The machine's load average is printed with the tables: timings on a shared
machine are upper bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, installed or not

from attribution.models import ModelCache
from space.gradio_app.config import ModelOffer, SpaceConfig, profile_names, read_config_file
from space.gradio_app.context import AppContext
from space.gradio_app.examples import swap_names
from space.gradio_app.offered_runs import GRAPH, PATCHING, OfferedRun, offered_runs
from tests.support.published_models import stand_in


def _load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def _app_context(config: SpaceConfig, loaded: dict) -> AppContext:
    """An app context whose cache already holds the stand-ins, without a time budget (the full time is measured)."""
    config = dataclasses.replace(config, time_budget_s=None, device="cpu", max_model_passes=None)
    config = dataclasses.replace(config, max_intervention_passes=None, cache_max_models=len(loaded))
    offer = ModelOffer(config.models, config.default_model, False, "")
    ctx = AppContext.create(config, offer, export_root=Path(tempfile.mkdtemp(prefix="profiles-exports-")))
    ctx.cache = ModelCache(max_models=len(loaded), max_bytes=1 << 62)
    for model_id, model in loaded.items():
        ctx.cache.get_or_load(ctx.model_spec(model_id).cache_key(), lambda model=model: model)
    return ctx


#: What the timed runs explain (cut to the tokens the estimate's steps count): a random-weight model's own output
#: is no text (its vocabulary is the checkpoint's, its tokenizer a small stand-in's).
CONTINUATION = " Mary. Then, Mark and Tom had a lot of fun at the school. Mark gave a ball to Tom."


def _target(loaded, n_tokens: int) -> str:
    ids = loaded.tokenizer(CONTINUATION, add_special_tokens=False)["input_ids"][:n_tokens]
    return loaded.tokenizer.decode(ids)


def _handler(ctx: AppContext, run: OfferedRun) -> Callable[[], object]:
    """The app's own handler of ``run`` (what a visitor's request calls), as a function of nothing, explaining a
    given target as long as the estimate's generated output (its generation passes are left out)."""
    from space.gradio_app.tabs.attribute import run_attribution
    from space.gradio_app.tabs.graph import run_graph
    from space.gradio_app.tabs.intervene import run_intervene

    loaded = ctx.load(run.model)
    target = _target(loaded, ctx.config.max_new_tokens)
    if run.method == GRAPH:
        return lambda: run_graph(ctx, run.model, run.example, target, 0.04, False, "-1")
    if run.method == PATCHING:
        counterfactual = swap_names(run.example)
        contrast = _target(loaded, 1).strip()
        return lambda: run_intervene(ctx, run.model, run.example, counterfactual, target, target, contrast, "-1")
    return lambda: run_attribution(ctx, run.model, run.example, target, run.method, ["probability"], None)


def _timed(function: Callable[[], object]) -> tuple[float | None, str]:
    from attribution.errors import AttributionExplorerError

    start = time.perf_counter()
    try:
        function()
    except AttributionExplorerError as error:  # e.g. a random translation model that ends its output at once
        return None, str(error).splitlines()[0][:80]
    return time.perf_counter() - start, ""


def measure_profile(config: SpaceConfig, runs: list[OfferedRun], threads: int) -> dict[tuple[str, str], tuple]:
    """Seconds of every run that the app would start, one model's full-size stand-in in memory at a time."""
    import torch

    torch.set_num_threads(threads)
    seconds: dict[tuple[str, str], tuple] = {}
    for model_id in config.models:
        ctx = _app_context(config, {model_id: stand_in(model_id)})
        for run in runs:
            if run.model == model_id and run.estimate is not None and run.within_cap:
                seconds[(run.model, run.method)] = _timed(_handler(ctx, run))
                print(f"  {run.model} {run.method}: {seconds[(run.model, run.method)]}", file=sys.stderr)
    return seconds


def pass_seconds(model_id: str, config: SpaceConfig, example: str, threads: int, repeats: int = 3) -> float:
    """Median seconds of one forward + backward pass of ``model_id``'s full-size stand-in over ``example`` and a
    continuation of ``max_new_tokens`` tokens (the longest sequence a run of the profile reads)."""
    import statistics

    import torch

    torch.set_num_threads(threads)
    loaded = stand_in(model_id)
    target = _target(loaded, config.max_new_tokens)
    if loaded.kind == "seq2seq":
        inputs = loaded.tokenizer(example, text_target=target, return_tensors="pt")
    else:
        inputs = loaded.tokenizer(example + target, return_tensors="pt")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded.model(**inputs).logits.sum().backward()
        times.append(time.perf_counter() - start)
        loaded.model.zero_grad(set_to_none=True)
    return statistics.median(times)


def projected_seconds(config: SpaceConfig, runs: list[OfferedRun], threads: int) -> dict[tuple[str, str], tuple]:
    """Each run's estimated passes times its model's measured pass (see :func:`pass_seconds`)."""
    per_pass = {}
    for run in runs:
        if run.model not in per_pass:
            per_pass[run.model] = pass_seconds(run.model, config, run.example, threads)
            print(f"  {run.model}: {per_pass[run.model]:.3f} s per forward + backward pass", file=sys.stderr)
    return {
        (run.model, run.method): (run.estimate.passes * per_pass[run.model], "")
        for run in runs
        if run.estimate is not None
    }


def profile_table(
    name: str, config: SpaceConfig, runs: list[OfferedRun], seconds: dict | None, *, column: str = "seconds here"
) -> str:
    budget = config.time_budget_s
    head = "| model | run | passes (estimate) | cap | verdict |"
    rule = "|---|---|---:|---:|---|"
    if seconds is not None:
        head = f"| model | run | passes (estimate) | cap | {column} | verdict ({budget:g} s budget) |"
        rule = "|---|---|---:|---:|---:|---|"
    lines = [f"**{name}** ({len(config.models)} models, {len(runs)} runs)", "", head, rule]
    for run in runs:
        if run.estimate is None:
            lines.append(f"| {run.model} | {run.method} | – | – | {'| – ' if seconds is not None else ''}| refused |")
            continue
        verdict = "within cap" if run.within_cap else "**over cap**"
        cells = [run.model, run.method, f"{run.estimate.passes:,}", f"{run.cap:,}" if run.cap else "none"]
        if seconds is not None:
            took, why = seconds.get((run.model, run.method), (None, "not run"))
            cells.append("–" if took is None else f"{took:.1f}")
            if took is None:
                verdict += f"; not timed: {why}"
            elif budget is not None:
                verdict += "; in time" if took <= budget else "; **over the time budget**"
        lines.append("| " + " | ".join([*cells, verdict]) + " |")
    return "\n".join(lines)


def startup_table(profile: str, data: dict, threads: int, folder: Path) -> str:
    """Seconds from starting the app's process to its page answering, with and without the models preloaded."""
    from tests.support.app_server import serve_app
    from tests.support.published_models import save_to_hub_cache

    config = SpaceConfig.from_dict(data, profile=profile)
    cache = folder / "hub-cache"
    for model_id in config.models:
        save_to_hub_cache(model_id, cache)
    os.environ.update(HF_HUB_CACHE=str(cache), ATTRIBUTION_EXPLORER_PROFILE=profile, OMP_NUM_THREADS=str(threads))
    rows = []
    for preload in (True, False):
        variant = json.loads(json.dumps(data))
        variant["profiles"][profile]["preload_models"] = preload
        start = time.perf_counter()
        with serve_app(variant, folder / f"app-{preload}", online=True, timeout_s=900):
            took = time.perf_counter() - start
        loaded = f"{min(config.cache_max_models, len(config.models))} preloaded" if preload else "none (lazy)"
        rows.append(f"| {profile} | {loaded} | {took:.1f} |")
    return "\n".join(["| profile | models loaded at start | seconds to serve |", "|---|---|---:|", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", nargs="*", default=["cpu-basic"], help="profiles to time here (default cpu-basic)")
    parser.add_argument("--per-pass", nargs="*", default=[], help="profiles whose runs are projected from one pass")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (cpu-basic has 2 vCPUs)")
    parser.add_argument("--startup", action="store_true", help="also time the app's start with the measured profile")
    parser.add_argument("--models", nargs="*", help="only these models of each profile (a quicker run)")
    args = parser.parse_args(argv)
    data = read_config_file()
    print(f"Before: {_load_average()}\n")
    for name in profile_names(data):
        config = SpaceConfig.from_dict(data, profile=name)
        if args.models:
            kept = tuple(m for m in config.models if m in args.models) or config.models[:1]
            config = dataclasses.replace(config, models=kept, default_model=kept[0])
        runs = list(offered_runs(config, lambda model_id: stand_in(model_id, device="meta")))
        if name in args.measure:
            print(profile_table(name, config, runs, measure_profile(config, runs, args.threads)) + "\n")
        elif name in args.per_pass:
            projected = projected_seconds(config, runs, args.threads)
            print(profile_table(name, config, runs, projected, column="projected seconds") + "\n")
        else:
            print(profile_table(name, config, runs, None) + "\n")
    if args.startup:
        for name in args.measure:
            with tempfile.TemporaryDirectory(prefix="profiles-startup-") as folder:
                print(startup_table(name, data, args.threads, Path(folder)) + "\n")
    print(f"After: {_load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
