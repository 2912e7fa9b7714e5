"""``attribution-explorer corpus``: explain a whole data set into a run folder (resumable; local or Ray).

    attribution-explorer corpus --model tiny-synth-translate --methods saliency attention graph \\
        --data examples/data/synth_translate_test.jsonl --out runs/synth

Only wiring: arguments are checked, then handed to :mod:`attribution.corpus`. Heavy modules (torch,
pyarrow, Ray) are imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attribution.corpus.records import FORMATS
from attribution.errors import InvalidInputError
from space.cli.common import (
    add_language_arguments,
    check_text_options,
    languages_from_args,
    model_spec_from_args,
    positive_int,
    top_k_int,
)

if TYPE_CHECKING:
    from attribution.progress import Progress


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``corpus`` on the main CLI's sub-parsers."""
    corpus = subparsers.add_parser(
        "corpus",
        help="attribute / route / score a whole data set into a run folder (resumable; local or Ray)",
        description="Explain every record of a data set with several methods and write the results as they "
        "finish (Parquet shards + result JSONs). Rerun the same command to resume.",
    )
    _add_model_options(corpus.add_argument_group("model"))
    _add_data_options(corpus.add_argument_group("data"))
    _add_task_options(corpus.add_argument_group("what to compute"))
    _add_engine_options(corpus.add_argument_group("engine"))
    corpus.set_defaults(handler=run)
    return corpus


def _add_model_options(model: argparse._ArgumentGroup) -> None:
    model.add_argument("--model", required=True, help="Hub id, local folder or bundled model name")
    model.add_argument("--revision", default=None, help="model revision on the Hub")
    model.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:N or auto (default: cpu; a Ray worker given GPUs with --gpus-per-worker: its GPU)",
    )
    model.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    model.add_argument(
        "--device-map", default=None, help="accelerate placement for models larger than one device, e.g. 'auto'"
    )
    model.add_argument(
        "--max-memory",
        default=None,
        metavar="DEV=SIZE,...",
        help="memory per device for --device-map, e.g. '0=20GiB,cpu=60GiB'",
    )
    model.add_argument("--offload-folder", default=None, help="folder for weights offloaded to disk (--device-map)")
    model.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads of the local engine (default: chosen from the model size, batch size and cores)",
    )
    add_language_arguments(model)


def _add_data_options(data: argparse._ArgumentGroup) -> None:
    data.add_argument(
        "--data",
        required=True,
        type=Path,
        help=".jsonl, .json, .csv, .tsv, .parquet, .txt (one sentence per line; also .gz, .bz2, .xz) or a datasets "
        "folder",
    )
    data.add_argument(
        "--target-data", default=None, type=Path, help="plain-text file of targets, line i for line i of --data"
    )
    data.add_argument(
        "--alignment-data",
        default=None,
        type=Path,
        help="Pharaoh alignments 'i-j ...' (fast_align, awesome-align), line i for line i of --data",
    )
    data.add_argument("--format", default=None, choices=FORMATS, help="default: from --data's suffix")
    data.add_argument("--split", default=None, help="split of a saved DatasetDict")
    data.add_argument(
        "--text-field",
        default=None,
        help="field with the prompt / source sentence (default: source); dots reach into nested rows: translation.en",
    )
    data.add_argument("--target-field", default=None, help="field with the target (default: target, if present)")
    data.add_argument(
        "--alignment-field", default=None, help="field with the gold alignment 'i-j ...' (default: alignment)"
    )
    data.add_argument("--contrast-field", default=None, help="field with a contrastive target")
    data.add_argument("--id-field", default=None, help="field with the record id (default: the row number)")
    data.add_argument("--limit", type=positive_int, default=None, help="only the first N records")


def _add_task_options(task: argparse._ArgumentGroup) -> None:
    task.add_argument(
        "--methods", nargs="+", default=["saliency"], metavar="METHOD", help="Inseq methods and/or 'graph'"
    )
    task.add_argument(
        "--step-scores", nargs="*", default=["probability"], metavar="NAME", help="step scores (default: probability)"
    )
    task.add_argument(
        "--method-params", default=None, metavar="JSON", help='e.g. \'{"integrated_gradients": {"n_steps": 16}}\''
    )
    task.add_argument(
        "--metrics",
        nargs="*",
        default=None,
        metavar="NAME",
        help="per-record scores (default: aer aer_threshold; opt-in, by intervening: comprehensiveness "
        "sufficiency deletion_aopc insertion_aopc)",
    )
    task.add_argument(
        "--explain",
        choices=["reference", "model"],
        default="reference",
        help="explain each record's reference target (default; the model's output where a record has none) or "
        "always the model's own output; AER is scored only where the reference is explained",
    )
    task.add_argument("--graph-threshold", type=float, default=0.04, help="edge threshold of the graph (0.04)")
    task.add_argument("--graph-top-k", type=top_k_int, default=0, help="logit-lens tokens per graph node (0: none)")
    task.add_argument(
        "--graph-roots", default="auto", help="'auto' (seq2seq: all tokens, causal: last), 'all' or an index"
    )
    task.add_argument(
        "--max-tokens", type=positive_int, default=None, help="records longer than this fail (default: model)"
    )
    task.add_argument(
        "--max-new-tokens", type=positive_int, default=20, help="tokens generated for records without target"
    )


def _add_engine_options(engine: argparse._ArgumentGroup) -> None:
    engine.add_argument("--out", required=True, type=Path, help="the run folder (created, or resumed)")
    engine.add_argument("--engine", choices=["local", "ray"], default="local", help="local (default) or ray")
    engine.add_argument("--batch-size", type=positive_int, default=8, help="records per batch (default 8)")
    engine.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    engine.add_argument("--workers", type=positive_int, default=2, help="Ray workers (each loads the model once)")
    engine.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs (torch threads) per Ray worker")
    engine.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker (e.g. 1 or 0.5)")


def parse_max_memory(value: str | None) -> dict[Any, str] | None:
    """``"0=20GiB,cpu=60GiB"`` → ``{0: "20GiB", "cpu": "60GiB"}`` (GPU indices as integers).

    Each size is read by accelerate's own parser now, so a bad one is refused before the model loads.
    """
    if value is None:
        return None
    from accelerate.utils import convert_file_size_to_int

    from attribution.validation import quoted

    memory: dict[Any, str] = {}
    for part in value.split(","):
        device, sep, size = part.partition("=")
        if not sep or not device.strip() or not size.strip():
            raise InvalidInputError(f"--max-memory must look like '0=20GiB,cpu=60GiB', not {value!r}.")
        try:
            convert_file_size_to_int(size.strip())
        except (ValueError, OverflowError):
            raise InvalidInputError(f"--max-memory: {quoted(size.strip())} is not a size such as 20GiB.") from None
        key = device.strip()
        memory[int(key) if key.isdigit() else key] = size.strip()
    return memory


def default_device(args: argparse.Namespace) -> str:
    """``--device`` as given; unset, a Ray worker that reserves GPUs loads the model on one (``auto``: Ray makes
    only the worker's own GPUs visible to it), anything else on the CPU."""
    if args.device is not None:
        return args.device
    return "auto" if args.engine == "ray" and args.gpus_per_worker > 0 else "cpu"


def _method_params(value: str | None) -> dict[str, dict[str, Any]]:
    from attribution.validation import parse_json_text

    if value is None:
        return {}
    params = parse_json_text(value, what="--method-params")
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise InvalidInputError('--method-params must map methods to parameters: {"method": {"name": value}}.')
    return params


def _fields(args: argparse.Namespace):
    from attribution.corpus import FieldMap

    given = {
        "text": args.text_field,
        "target": args.target_field,
        "alignment": args.alignment_field,
        "contrast": args.contrast_field,
        "id": args.id_field,
    }
    defaults = FieldMap()
    return FieldMap(
        text=args.text_field or defaults.text,
        target=args.target_field or defaults.target,
        alignment=args.alignment_field or defaults.alignment,
        contrast=args.contrast_field,
        id=args.id_field,
        required=frozenset({"text", *(role for role, name in given.items() if name)}),
    )


def run(args: argparse.Namespace) -> int:
    from attribution.corpus import RayOptions, TaskConfig, default_metrics, read_records, run_corpus

    check_text_options(args)
    if args.engine == "local" and (args.ray_address or args.gpus_per_worker):
        raise InvalidInputError("--ray-address and --gpus-per-worker need --engine ray.")
    args.device = default_device(args)
    task = TaskConfig(
        methods=tuple(args.methods),
        step_scores=tuple(args.step_scores),
        method_params=_method_params(args.method_params),
        metrics=tuple(args.metrics if args.metrics is not None else default_metrics()),
        graph_threshold=args.graph_threshold,
        graph_top_k=args.graph_top_k,
        graph_roots=args.graph_roots,
        max_tokens=args.max_tokens,
        max_new_tokens=args.max_new_tokens,
        languages=languages_from_args(args),
        explain=args.explain,
    )
    model = model_spec_from_args(
        args,
        device_map=args.device_map,
        max_memory=parse_max_memory(args.max_memory),
        offload_folder=args.offload_folder,
        threads=args.threads,
    )
    ray = None
    if args.engine == "ray":
        ray = RayOptions(
            address=args.ray_address,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
        )
    records = read_records(
        args.data,
        _fields(args),
        fmt=args.format,
        split=args.split,
        target_path=args.target_data,
        alignment_path=args.alignment_data,
        limit=args.limit,
    )
    with _records_bar(f"{args.model} × {len(task.methods)} method(s)") as progress:
        summary = run_corpus(
            records,
            args.out,
            model=model,
            task=task,
            engine=args.engine,
            batch_size=args.batch_size,
            ray=ray,
            data=_data_manifest(args),
            progress=progress,
        )
    skipped = f", {summary.skipped} already done" if summary.skipped else ""
    print(
        f"{summary.done} records in {summary.seconds:.1f} s ({summary.records_per_second:.2f} records/s, "
        f"after {summary.setup_seconds:.1f} s of set-up), "
        f"{summary.failed} failed{skipped}; wrote {summary.run_dir}",
        file=sys.stderr,
    )
    return 0


def _data_manifest(args: argparse.Namespace) -> dict[str, Any]:
    """What the run folder records about its data: the file names (never their folders) and the fields read."""
    data: dict[str, Any] = {"name": args.data.name, "fields": _fields(args).names()}
    for key, path in (("target_file", args.target_data), ("alignment_file", args.alignment_data)):
        if path is not None:
            data[key] = path.name
    return data


@contextmanager
def _records_bar(description: str) -> Iterator[Progress]:
    """A tqdm bar counting records (rate in records/s, ETA); yields the run's :class:`~attribution.progress.Progress`.

    The message (``3 of 10 records``) is not shown: the bar says the count itself.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=0, desc=description, unit="record", file=sys.stderr, dynamic_ncols=True)

    def progress(done: float, total: float, message: str = "") -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()
