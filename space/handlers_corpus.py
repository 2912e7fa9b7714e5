"""The Compare tab's corpus upload: a small uploaded data set → a corpus run → its interactive report.

Pure functions like :mod:`space.handlers` (no Gradio here). The upload is untrusted: only a file
that Gradio received into its upload folder is read, at most :data:`MAX_UPLOAD_BYTES` and the
operator's ``max_corpus_rows`` rows; parse errors are one line naming the file by its own name,
never a server path. The run stops cleanly at the operator's ``corpus_time_budget_s`` and the
report then covers the records finished by then.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from attribution.errors import InvalidInputError
from space.handlers import AppContext, Progress, _silent, offered_methods, prune_exports

#: Largest upload read (bytes); the row cap is the operator's ``max_corpus_rows``.
MAX_UPLOAD_BYTES = 2_000_000
UPLOAD_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
GRAPH = "graph"


@dataclass
class CorpusView:
    report_path: Path  # the standalone report page
    results_path: Path  # every record x method row as one Parquet file
    preview_html: str  # ``<iframe srcdoc=…>`` of the report
    summary: str  # one line: records done, failed, stopped early


def _field(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def run_uploaded_corpus(
    ctx: AppContext,
    upload: str | None,
    model: str | None,
    methods: list[str] | None,
    include_graph: bool,
    text_field: str | None = "source",
    target_field: str | None = "target",
    alignment_field: str | None = "alignment",
    *,
    upload_root: Path | None = None,
    progress: Progress = _silent,
) -> CorpusView:
    """Run the uploaded corpus with ``model`` and ``methods`` (+ the graph) and draw its report.

    ``upload_root`` is where the web framework puts uploads: a path outside it is refused.
    """
    from attribution.corpus import FieldMap, ModelSpec, TaskConfig, load_run, read_records, run_corpus

    config = ctx.config
    if not config.max_corpus_rows:
        raise InvalidInputError("Corpus uploads are turned off on this app (max_corpus_rows is 0).")
    if not upload:
        raise InvalidInputError("Upload a .jsonl, .csv or .parquet file first.")
    path = Path(upload).resolve()
    if upload_root is not None and Path(upload_root).resolve() not in path.parents:
        raise InvalidInputError("That file was not uploaded here; upload it again.")
    fmt = UPLOAD_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"{path.name!r} is not a .jsonl, .csv or .parquet file.")
    chosen = [m for m in (methods or []) if m]
    offered = offered_methods(config)
    unknown = [m for m in chosen if m not in offered]
    if unknown:
        raise InvalidInputError(f"Unknown method {unknown[0]!r}; choose from: {', '.join(offered)}.")
    if include_graph:
        chosen.append(GRAPH)
    if not chosen:
        raise InvalidInputError("Pick at least one method (or the contribution graph).")
    text = _field(text_field)
    if text is None:
        raise InvalidInputError("Name the field that holds the text (e.g. source).")
    target, alignment = _field(target_field), _field(alignment_field)
    fields = FieldMap(
        text=text,
        target=target,
        alignment=alignment,
        required=frozenset({"text"} | ({"target"} if target and target != "target" else set())),
    )
    records = read_records(
        path, fields, fmt=fmt, max_rows=config.max_corpus_rows, max_bytes=MAX_UPLOAD_BYTES, display_name=path.name
    )
    model_id = ctx.check_model(model[0] if isinstance(model, list) and model else model)  # type: ignore[arg-type]
    progress(0.0, f"loading {model_id}")
    loaded = ctx.load(model_id)
    task = TaskConfig(
        methods=tuple(chosen),
        method_params={m: dict(config.method_params[m]) for m in chosen if m in config.method_params},
        max_tokens=config.max_input_tokens,
        max_new_tokens=config.max_new_tokens,
    )
    prune_exports(ctx.export_dir)
    folder = Path(tempfile.mkdtemp(dir=ctx.export_dir))
    summary = run_corpus(
        records,
        folder / "run",
        model=ModelSpec(model_id, device=config.device, dtype=config.dtype),
        task=task,
        data={"name": path.name},
        loaded=loaded,
        progress=lambda done, total: progress(done / max(total, 1), f"{done} of {total} records"),
        deadline=time.monotonic() + config.corpus_time_budget_s,
    )
    run = load_run(folder / "run")
    return CorpusView(
        report_path=_write_report(run, folder),
        results_path=_write_results(run, folder),
        preview_html=_preview(run),
        summary=_summary_line(summary, len(records), config.corpus_time_budget_s),
    )


def _write_report(run, folder: Path) -> Path:
    from exporters import export_result

    return Path(export_result(run).write(folder / "corpus-report.html"))


def _preview(run) -> str:
    from exporters import export_result
    from exporters.page import iframe_snippet

    export = export_result(run)
    return iframe_snippet(export.html, title=export.title, height=900)


def _write_results(run, folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "corpus-results.parquet"
    pq.write_table(pa.Table.from_pylist(run.rows), path)
    return path


def _summary_line(summary, total: int, budget_s: float) -> str:
    line = f"{summary.done} of {total} records explained in {summary.seconds:.1f} s, {summary.failed} failed"
    if not summary.complete:
        line += f"; stopped at the {budget_s:g} s time budget (the report covers the records finished)"
    return line + "."
