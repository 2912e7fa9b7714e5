"""The Compare tab's corpus upload: a small uploaded data set → a corpus run → its interactive report.

The handler is a plain function of widget values like every tab's. The upload is untrusted: only a file
in the app's upload store is read, at most the operator's ``max_upload_mb`` and ``max_corpus_rows``
rows, decoding to at most :data:`MAX_EXPANSION` times that cap, a cell at most what the token limit
lets a model read (a longer one fails its record); parse errors are one line naming the file by its
own name, never a server path, and the refused file is deleted at once. Before anything runs, each
record × method's cost is estimated and held to the
operator's ``max_model_passes`` (one record is one run, like an Attribute request); the run stops
cleanly at ``corpus_time_budget_s`` (between batches, or inside one at the next module call) and
the report then covers the records finished by then. The run folder is temporary; the report and
the results go to the app's bounded store of download files.
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from attribution.budget import time_budget
from attribution.errors import BudgetExceededError, InvalidInputError
from attribution.models import MAX_CHARS_PER_TOKEN
from attribution.progress import Progress, no_progress
from space.gradio_app.config import SpaceConfig
from space.gradio_app.context import AppContext, offered_methods
from space.gradio_app.request_guard import Uploads
from space.gradio_app.tabs.export import page_preview
from space.gradio_app.wiring import TRACK_PROGRESS, Page, reporter, user_errors

if TYPE_CHECKING:
    from attribution.corpus import FieldMap, Record, TaskConfig
    from attribution.models import LoadedModel

#: An upload may decode to at most this many times the upload cap (a Parquet file's columns, decompressed).
MAX_EXPANSION = 10
UPLOAD_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
GRAPH = "graph"


@dataclass
class CorpusView:
    report_path: Path  # the standalone report page (a download file of the app's export store)
    results_path: Path  # every record x method row as one Parquet file (likewise)
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
    progress: Progress = no_progress,
) -> CorpusView:
    """Run the uploaded corpus with ``model`` and ``methods`` (+ the graph) and draw its report.

    ``upload_root`` is where the web framework puts uploads: a path outside it is refused.
    """
    from attribution.corpus import TaskConfig

    config = ctx.config
    if not config.max_corpus_rows:
        raise InvalidInputError("Corpus uploads are turned off on this app (max_corpus_rows is 0).")
    path, fmt = _uploaded_file(upload, upload_root)
    chosen = _chosen_methods(config, methods, include_graph)
    records = _read_upload(config, path, fmt, _field_map(text_field, target_field, alignment_field), upload_root)
    model_id = ctx.check_model(model[0] if isinstance(model, list) and model else model)  # type: ignore[arg-type]
    progress(0.0, 1, f"loading {model_id}")
    loaded = ctx.load(model_id)
    task = TaskConfig(
        methods=tuple(chosen),
        method_params={m: dict(config.method_params[m]) for m in chosen if m in config.method_params},
        max_tokens=config.max_input_tokens,
        max_new_tokens=config.max_new_tokens,
    )
    _check_cost(ctx, loaded, records, task)
    return _run(ctx, loaded, model_id, records, task, path.name, progress)


def _uploaded_file(upload: str | None, upload_root: Path | None) -> tuple[Path, str]:
    """The uploaded file (inside ``upload_root``) and its format, from its extension."""
    if not upload:
        raise InvalidInputError("Upload a .jsonl, .csv or .parquet file first.")
    path = Path(upload).resolve()
    if upload_root is not None and Path(upload_root).resolve() not in path.parents:
        raise InvalidInputError("That file was not uploaded here; upload it again.")
    fmt = UPLOAD_FORMATS.get(path.suffix.lower())
    if fmt is None:
        _discard(path, upload_root)
        raise InvalidInputError(f"{path.name!r} is not a .jsonl, .csv or .parquet file.")
    return path, fmt


def _chosen_methods(config: SpaceConfig, methods: list[str] | None, include_graph: bool) -> list[str]:
    chosen = [m for m in (methods or []) if m]
    offered = offered_methods(config)
    unknown = [m for m in chosen if m not in offered]
    if unknown:
        raise InvalidInputError(f"Unknown method {unknown[0]!r}; choose from: {', '.join(offered)}.")
    if include_graph:
        chosen.append(GRAPH)
    if not chosen:
        raise InvalidInputError("Pick at least one method (or the contribution graph).")
    return chosen


def _field_map(text_field: str | None, target_field: str | None, alignment_field: str | None) -> FieldMap:
    from attribution.corpus import FieldMap

    text = _field(text_field)
    if text is None:
        raise InvalidInputError("Name the field that holds the text (e.g. source).")
    target, alignment = _field(target_field), _field(alignment_field)
    return FieldMap(
        text=text,
        target=target,
        alignment=alignment,
        required=frozenset({"text"} | ({"target"} if target and target != "target" else set())),
    )


def _read_upload(config: SpaceConfig, path: Path, fmt: str, fields: FieldMap, upload_root: Path | None) -> list[Record]:
    """The upload's records, bounded by the operator's caps; a file refused for what it holds is deleted."""
    from attribution.corpus import read_records
    from attribution.corpus.records import MissingFieldError

    try:
        return read_records(
            path,
            fields,
            fmt=fmt,
            max_rows=config.max_corpus_rows,
            max_bytes=config.max_upload_bytes,
            max_decoded_bytes=MAX_EXPANSION * config.max_upload_bytes,
            max_cell_chars=config.max_input_tokens * MAX_CHARS_PER_TOKEN if config.max_input_tokens else None,
            display_name=path.name,
        )
    except MissingFieldError:
        raise  # the file may be read with other field names: kept
    except InvalidInputError:
        _discard(path, upload_root)
        raise


def _run(
    ctx: AppContext,
    loaded: LoadedModel,
    model_id: str,
    records: list[Record],
    task: TaskConfig,
    data_name: str,
    progress: Progress,
) -> CorpusView:
    """Run the records in a temporary run folder, until done or the corpus time budget; keep the report."""
    from attribution.corpus import load_run, run_corpus
    from attribution.result_kinds import file_stem
    from exporters import export_result
    from exporters.embed import iframe_embed

    config = ctx.config
    with tempfile.TemporaryDirectory(prefix="corpus-") as scratch:  # the run folder lives only this long
        run_dir = Path(scratch) / "run"
        budget_s = config.corpus_time_budget_s
        try:
            with time_budget(loaded, budget_s, what="The corpus run") as budget:
                summary = run_corpus(
                    records,
                    run_dir,
                    model=ctx.model_spec(model_id),
                    task=task,
                    data={"name": data_name},
                    loaded=loaded,
                    progress=progress,
                    deadline=time.monotonic() + budget_s,
                )
            complete, seconds = summary.complete, summary.seconds
        except BudgetExceededError:  # stopped inside a batch: the folder holds every record finished before it
            complete, seconds = False, budget.elapsed
        run = load_run(run_dir)
        done = {row["record_id"] for row in run.rows}
        failed = {row["record_id"] for row in run.rows if row["status"] != "ok"}
        line = _summary_line(len(done), len(records), seconds, len(failed), complete, budget_s)
        export = export_result(run)
        return CorpusView(
            report_path=ctx.exports.write(f"{file_stem(run)}.html", export.html),
            results_path=ctx.exports.write("corpus-results.parquet", _parquet(run)),
            preview_html=iframe_embed(export.html, title=export.title, script=False, loading="Loading the report…"),
            summary=line,
        )


def _discard(path: Path, upload_root: Path | None) -> None:
    """Delete a refused upload at once (it is of no use to anyone, and uploads are bounded on disk)."""
    if upload_root is not None:
        path.unlink(missing_ok=True)


def _check_cost(ctx: AppContext, loaded: LoadedModel, records: list[Record], task: TaskConfig) -> None:
    """Refuse, before anything runs, an upload with a record whose run of one method is over the request cap.

    Each record × method is one run like an Attribute request (the graph: a contribution graph), held to
    ``max_model_passes``; the upload as a whole is bounded by ``max_corpus_rows`` and the corpus time budget.
    """
    from attribution.cost import estimate_attribution_cost, estimate_graph_cost

    if ctx.config.max_model_passes is None:
        return  # no cap: nothing to estimate
    for record in records:
        if record.problem or not record.text.strip():
            continue  # the run records why it fails
        try:
            ctx.check_texts(loaded, input_text=record.text, target=record.target)
        except InvalidInputError:
            continue  # likewise: too long, or not text
        for method in task.methods:
            if method == GRAPH:
                estimate = estimate_graph_cost(loaded, record.text, target=record.target)
            else:
                estimate = estimate_attribution_cost(
                    loaded,
                    record.text,
                    method=method,
                    target=record.target,
                    contrast_target=record.contrast,
                    method_params=task.method_params.get(method),
                    step_scores=task.step_scores,
                    max_new_tokens=task.max_new_tokens,
                )
            ctx.check_cost([estimate], f"Record {record.record_id[:40]!r}")


def _parquet(run) -> bytes:
    """Every record × method row of ``run`` as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(run.rows), sink)
    return sink.getvalue().to_pybytes()


def _summary_line(done: int, total: int, seconds: float, failed: int, complete: bool, budget_s: float) -> str:
    line = f"{done} of {total} records explained in {seconds:.1f} s, {failed} failed"
    if not complete:
        line += f"; stopped at the {budget_s:g} s time budget (the report covers the records finished)"
    return line + "."


def build(page: Page, models: gr.Dropdown, methods: gr.CheckboxGroup) -> None:
    """The section, inside the Compare tab: upload a small data set, get its report (first model, its methods)."""
    rows = page.ctx.config.max_corpus_rows
    with gr.Accordion(f"Corpus: a data set of up to {rows} records → an interactive report", open=False):
        gr.Markdown(
            "Upload JSON lines, CSV or Parquet with a text field (and optionally a target and a gold alignment "
            "such as `0-0 1-2`). The first selected model explains every record with the selected methods; the "
            "report shows AER distributions, method agreement and each record's heatmap."
        )
        upload = gr.File(
            label="Data (.jsonl, .csv, .parquet)",
            file_types=list(UPLOAD_FORMATS),
            type="filepath",
            elem_id="corpus-file",
        )
        with gr.Row():
            text = gr.Textbox(value="source", label="Text field")
            target = gr.Textbox(value="target", label="Target field (optional)")
            alignment = gr.Textbox(value="alignment", label="Gold alignment field (optional)")
            graph = gr.Checkbox(value=False, label="Also the contribution graph")
        run = gr.Button("Run corpus", elem_id="corpus-run")
        summary = gr.Markdown(elem_id="corpus-summary")
        files = gr.File(label="Report and results", file_count="multiple", interactive=False, elem_id="corpus-files")
        preview = page_preview("Report", "corpus-preview")

    inputs = [upload, models, methods, graph, text, target, alignment]
    outputs = [summary, files, preview]
    run.click(_endpoint(page.ctx, page.uploads), inputs, outputs, api_name="corpus", **page.groups["corpus"])


def _endpoint(ctx: AppContext, uploads: Uploads):
    """``/corpus``: the upload must be one of this app's uploads (its store's folder)."""

    @user_errors
    def corpus(upload, models_, methods_, graph, text, target, alignment, progress=TRACK_PROGRESS):
        fields = (text, target, alignment)
        view = run_uploaded_corpus(
            ctx, upload, models_, methods_, graph, *fields, upload_root=uploads.folder, progress=reporter(progress)
        )
        return html.escape(view.summary), [str(view.report_path), str(view.results_path)], view.preview_html

    return corpus
