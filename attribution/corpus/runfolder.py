"""The run folder: what a corpus run writes as records finish, and how it is read back.

    RUN_DIR/
      run.json                     what was run (model, methods, parameters, data), status and counts
      shards/part-000001.parquet   one row per record and method: status, error, metrics, sizes...
      results/ab/<id>-<hash>/<method>.json   each result, the JSON `attribution-explorer export` draws

Why Parquet shards: a columnar file per flush is written once and never appended to, so a file is
either whole or absent; the shards of a folder read as one table with pyarrow, pandas, DuckDB or
``datasets``; 10 000 records × 3 methods are a few hundred kilobytes.

Loss-free and consistent, whatever stops the run:

- every file is written to a temporary name in the same folder and renamed into place (atomic),
  so a reader never sees half a file;
- a record's result JSONs are written before its row, and its rows (all methods of one record
  together) are the commit: a record counts as finished only when its rows are in a shard. A
  result JSON without a row (the run stopped in between) is simply written again on resume;
- a second process cannot write to the same folder at once (an exclusive lock on ``.lock``);
- rows are never rewritten, so resuming skips every record that has rows and none is duplicated.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attribution.corpus.tasks import MethodOutcome, TaskConfig
from attribution.display import NotebookDisplay
from attribution.errors import AttributionExplorerError, InvalidInputError, ResultFormatError
from attribution.frames import data_frame
from attribution.results import (
    SCHEMA_VERSION,
    AttributionResult,
    ContributionGraph,
    library_versions,
    load_result_file,
    utc_now,
)
from attribution.validation import ObjectReader, expect_str, expect_str_map, fail, read_json_file

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "run.json"
SHARDS = "shards"
RESULTS = "results"
LOCK = ".lock"
#: Largest run.json read (a manifest is a few kilobytes).
MAX_MANIFEST_BYTES = 1_000_000
#: Fields of the manifest that define the numbers: a resumed run must have the same ones.
_DEFINING = ("model", "task")
_TEXT_COLUMNS = (
    "record_id",
    "content_hash",
    "method",
    "status",
    "error",
    "source_text",
    "target_text",
    "explained",
    "result_file",
)
_OTHER_COLUMNS = ("row", "seconds", "worker")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C mid-write included: no temporary file is left behind
        temporary.unlink(missing_ok=True)
        raise


def result_path(record_id: str, method: str) -> str:
    """Where a record's result goes, relative to the run folder: safe for any record id."""
    digest = hashlib.sha1(record_id.encode("utf-8")).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", record_id)[:40].strip(".") or "record"
    return f"{RESULTS}/{digest[:2]}/{slug}-{digest[:12]}/{method}.json"


def _schema(task: TaskConfig):
    import pyarrow as pa

    fields = [pa.field(name, pa.string()) for name in _TEXT_COLUMNS]
    fields += [pa.field("row", pa.int64()), pa.field("seconds", pa.float64()), pa.field("worker", pa.string())]
    counts = set(task.count_columns())
    fields += [pa.field(name, pa.int64() if name in counts else pa.float64()) for name in task.value_columns()]
    return pa.schema(fields)


class RunFolder:
    """Writes a run folder (see the module docstring); use :meth:`open` and close it with :meth:`close`."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], lock_handle) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self.task = TaskConfig.from_dict(manifest["task"])
        self._lock_handle = lock_handle
        self._schema = _schema(self.task)
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._next_shard = 1 + max((int(p.stem.split("-")[1]) for p in self._shard_files()), default=0)
        self.written_records = 0
        self.failed_records = 0
        rows = _read_rows(run_dir, ["record_id", "status"])
        self._done = {row["record_id"] for row in rows}
        self._failed = {row["record_id"] for row in rows if row["status"] != "ok"}

    @classmethod
    def open(
        cls, run_dir: str | Path, *, model: Mapping[str, Any], task: TaskConfig, data: Mapping[str, Any]
    ) -> RunFolder:
        """Start a run in ``run_dir``, or resume the one there (same model and task, else a clear error)."""
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise InvalidInputError(f"{run_dir} is a file; give a folder for the run.")
        existing = run_dir / MANIFEST
        if run_dir.is_dir() and not existing.is_file() and any(run_dir.iterdir()):
            raise InvalidInputError(f"{run_dir} is not empty and holds no corpus run ({MANIFEST}); give a new folder.")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock_handle = (run_dir / LOCK).open("a")
        except OSError as error:
            raise InvalidInputError(f"Cannot write to {run_dir}: {error.strerror or error}") from error
        try:
            fcntl.flock(lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_handle.close()
            message = f"Another run is writing to {run_dir} now; wait for it or use another folder."
            raise InvalidInputError(message) from None
        manifest: dict[str, Any] = {
            "schema": "corpus-run",
            "schema_version": SCHEMA_VERSION,
            "model": dict(model),
            "task": task.to_dict(),
            "data": dict(data),
            "created_at": utc_now(),
            "library_versions": library_versions(),
        }
        if existing.is_file():
            previous = _read_manifest(run_dir)
            for key in _DEFINING:
                if previous.get(key) != manifest[key]:
                    lock_handle.close()
                    raise InvalidInputError(
                        f"{run_dir} holds a run with other settings ({key}: {json.dumps(previous.get(key))}); "
                        "resume it with the same model and task options, or give a new folder."
                    )
            manifest = {**previous, "data": dict(data)}
        folder = cls(run_dir, manifest, lock_handle)
        for leftover in run_dir.rglob(".*.tmp"):  # temporary files of a run killed mid-write
            leftover.unlink(missing_ok=True)
        folder._write_manifest(status="running")
        return folder

    def _shard_files(self) -> list[Path]:
        return sorted((self.run_dir / SHARDS).glob("part-*.parquet"))

    def finished(self) -> dict[str, str]:
        """Record id → content hash of every record that has its rows (failed ones included)."""
        rows = _read_rows(self.run_dir, ["record_id", "content_hash"])
        return {row["record_id"]: row["content_hash"] for row in rows}

    def write(self, outcomes: Iterable[list[MethodOutcome]]) -> None:
        """Write the result JSONs of finished records now; their rows join the next shard."""
        for record_outcomes in outcomes:
            for outcome in record_outcomes:
                self._buffer.append(self._row(outcome))
            self.written_records += 1
            self.failed_records += any(o.status != "ok" for o in record_outcomes)
        if len(self._buffer) >= 2048 or time.monotonic() - self._last_flush > 10.0:
            self.flush()

    def _row(self, outcome: MethodOutcome) -> dict[str, Any]:
        relative = None
        if outcome.result is not None:
            relative = result_path(outcome.record_id, outcome.method)
            atomic_write(self.run_dir / relative, outcome.result.to_json().encode("utf-8"))
        row = {
            "record_id": outcome.record_id,
            "content_hash": outcome.content_hash,
            "method": outcome.method,
            "status": outcome.status,
            "error": outcome.error,
            "source_text": outcome.source_text,
            "target_text": outcome.target_text,
            "explained": outcome.explained,
            "result_file": relative,
            "row": outcome.row,
            "seconds": outcome.seconds,
            "worker": outcome.worker,
        }
        row.update({name: outcome.values.get(name) for name in self.task.value_columns()})
        return row

    def flush(self) -> None:
        """Commit the buffered rows as one new shard (atomic)."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self._buffer, schema=self._schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write(self.run_dir / SHARDS / f"part-{self._next_shard:06d}.parquet", sink.getvalue().to_pybytes())
        self._next_shard += 1
        self._done.update(row["record_id"] for row in self._buffer)
        self._failed.update(row["record_id"] for row in self._buffer if row["status"] != "ok")
        self._buffer.clear()
        self._write_manifest(status="running")

    def close(self, *, status: str) -> None:
        """Flush, record ``status`` (``complete`` or ``interrupted``) and release the folder."""
        try:
            self.flush()
            self._write_manifest(status=status)
        finally:
            with contextlib.suppress(OSError):
                self._lock_handle.close()

    def _write_manifest(self, *, status: str) -> None:
        total = self.manifest["data"].get("n_records")
        counts = {"records": total, "done": len(self._done), "failed": len(self._failed)}
        self.manifest.update(status=status, updated_at=utc_now(), counts=counts)
        text = json.dumps(self.manifest, ensure_ascii=False, indent=1, allow_nan=False)
        atomic_write(self.run_dir / MANIFEST, text.encode("utf-8"))


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json``, size-capped and checked field by field (a folder may come from anyone)."""
    path = run_dir / MANIFEST
    if not path.exists():  # a run.json that is a folder, a device or a FIFO is refused by read_json_file's check
        raise InvalidInputError(f"{run_dir} is not a corpus run folder (no {MANIFEST}).")
    try:
        return _checked_manifest(read_json_file(path, max_bytes=MAX_MANIFEST_BYTES))
    except ResultFormatError as error:
        raise InvalidInputError(f"{path} is not a readable corpus run manifest: {error}") from None


def _checked_manifest(data: Any) -> dict[str, Any]:
    """``data`` if it is a manifest this version can read: the fields readers of a run use, checked."""
    f = ObjectReader(data, "")
    if f.get("schema", None) != "corpus-run":
        raise fail("schema", "must be 'corpus-run'")
    if (f.whole("schema_version", optional=True, minimum=0) or 0) > SCHEMA_VERSION:
        raise ResultFormatError("it was written by a newer Attribution Explorer: upgrade to read it")
    model = ObjectReader(f.get("model"), "model")
    model.text("model_id")
    model.text("revision", optional=True)
    if "model_info" in f.data:
        info = ObjectReader(f.get("model_info"), "model_info")
        info.text("kind", optional=True)
        info.text("model_type", optional=True)
    TaskConfig.from_dict(f.get("task"))
    data = ObjectReader(f.get("data"), "data")
    data.whole("n_records", optional=True, minimum=0)
    data.text("name", optional=True)
    expect_str_map(f.get("library_versions", {}), "library_versions", expect_str)
    f.text("created_at", optional=True)
    f.text("status", optional=True)
    return f.data


def _read_rows(run_dir: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    return _read_table(run_dir, columns).to_pylist() if (run_dir / SHARDS).is_dir() else []


def _read_table(run_dir: Path, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((run_dir / SHARDS).glob("part-*.parquet")) if (run_dir / SHARDS).is_dir() else []
    tables = [pq.read_table(path, columns=columns) for path in files]
    if not tables:
        return pa.table({name: pa.array([], pa.string()) for name in columns or ["record_id"]})
    return pa.concat_tables(tables, promote_options="permissive")  # shards written before counts were integers


@dataclass
class CorpusRun(NotebookDisplay):
    """A run folder read back (no model needed): its manifest and one row per record and method."""

    run_dir: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def task(self) -> TaskConfig:
        return TaskConfig.from_dict(self.manifest["task"])

    @property
    def methods(self) -> list[str]:
        return list(self.manifest["task"]["methods"])

    @property
    def model_id(self) -> str:
        return str(self.manifest["model"].get("model_id"))

    def result(self, row: Mapping[str, Any]) -> AttributionResult | ContributionGraph | None:
        """The result JSON a row points to (None for a failed record)."""
        relative = row.get("result_file")
        if not relative:
            return None
        path = self._inside(relative)
        try:
            return load_result_file(path)
        except AttributionExplorerError as error:  # one line naming the file, not only the field
            raise InvalidInputError(f"{relative}: {error}") from None

    def _inside(self, relative: str) -> Path:
        """The file a row names, refused if it lies outside the run folder (a folder may come from anyone)."""
        path = (self.run_dir / relative).resolve()
        if self.run_dir.resolve() not in path.parents:
            raise InvalidInputError(f"A row of {self.run_dir} points outside the run folder: {relative!r}.")
        return path

    def provenance_fields(self) -> dict[str, Any]:
        """The facts an exported page shows in its header (same keys as a single result's)."""
        model, info = self.manifest["model"], self.manifest.get("model_info", {})
        task = self.manifest["task"]
        return {
            "model_id": model.get("model_id"),
            "model_revision": model.get("revision"),
            "model_kind": info.get("kind"),
            "model_type": info.get("model_type"),
            "library_versions": dict(self.manifest.get("library_versions", {})),
            "created_at": self.manifest.get("created_at"),
            "method": "corpus run: " + ", ".join(task["methods"]),
            "parameters": {
                **({"data": self.manifest["data"]["name"]} if self.manifest["data"].get("name") else {}),
                "records": len({row["record_id"] for row in self.rows}),
                "step_scores": task["step_scores"],
                "metrics": task["metrics"],
                "method_params": task["method_params"],
            },
        }

    def to_dataframe(self) -> pd.DataFrame:
        """One row per record and method, in record order: the shards' columns (``record_id``, ``method``,
        ``status``, ``error``, the texts, ``result_file``, ``row``, ``seconds``, ``worker``, then one per step
        score and metric, e.g. ``aer``). ``self.result(row)`` reads a row's result back."""
        names = _schema(self.task).names
        columns = {name: [row.get(name) for row in self.rows] for name in names}
        return data_frame(columns, integers=["row", *self.task.count_columns()])

    def pooled_aer(self) -> dict[str, float]:
        """Per method, the corpus-level AER papers report (Och & Ney: link counts summed over every scored record
        before the ratio), from the rows' ``aer_*_links`` counts; methods without scored records are left out."""
        from attribution.compare import pooled_aer
        from attribution.corpus.tasks import AER_LINK_COLUMNS

        sums: dict[str, list[int]] = {}
        for row in self.rows:
            counts = [row.get(name) for name in AER_LINK_COLUMNS]
            whole = [int(c) for c in counts if isinstance(c, int | float) and c == c]  # nulls (no gold) left out
            if row.get("status") == "ok" and len(whole) == len(counts):
                total = sums.setdefault(row["method"], [0, 0, 0])
                for index, count in enumerate(whole):
                    total[index] += count
        return {method: pooled_aer(matched, predicted, gold) for method, (predicted, gold, matched) in sums.items()}

    def to_json(self, path: str | Path | None = None) -> str:
        """The manifest (what was run, counts) as JSON: the small companion of the Parquet shards."""
        text = json.dumps(self.manifest, ensure_ascii=False, indent=1, allow_nan=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def shard_files(self) -> list[Path]:
        return sorted((self.run_dir / SHARDS).glob("part-*.parquet"))

    def folder_files(self) -> dict[str, bytes]:
        """The run folder as :func:`load_run` reads it, path in the folder → bytes: the manifest, the shards and
        the result JSONs the rows point to (what a copy elsewhere, e.g. a Hub repo, needs to load)."""
        files = {MANIFEST: (self.run_dir / MANIFEST).read_bytes()}
        files.update({f"{SHARDS}/{path.name}": path.read_bytes() for path in self.shard_files()})
        for row in self.rows:
            relative = row.get("result_file")
            if relative:
                files[relative] = self._inside(relative).read_bytes()
        return files


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_run(run_dir: str | Path) -> CorpusRun:
    """Read a run folder: its manifest and all rows (in record order, then the run's method order)."""
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    try:
        table = _read_table(run_dir)
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"Cannot read the shards of {run_dir}: {str(error).splitlines()[0]}") from None
    if table.num_rows:
        expected = _schema(TaskConfig.from_dict(manifest["task"]))
        table = _upgraded(table, expected)
        for field in expected:  # every column the readers use, of the type the run writes
            if field.name not in table.schema.names or table.schema.field(field.name).type != field.type:
                raise InvalidInputError(f"The shards of {run_dir} are not this run's: column {field.name!r} is wrong.")
    rows = table.to_pylist()
    order = {method: i for i, method in enumerate(manifest["task"]["methods"])}
    rows.sort(key=lambda row: (row["row"], order.get(row["method"], len(order))))
    if manifest.get("status") == "running" and not _held(run_dir):
        manifest = {**manifest, "status": "interrupted"}  # its writer was killed before it could say so
    return CorpusRun(run_dir=run_dir, manifest=manifest, rows=rows)


#: Columns that runs written before them lack (read as nulls).
_ADDED_COLUMNS = ("explained", "aer_predicted_links", "aer_gold_links", "aer_matched_links")


def _upgraded(table: Any, expected: Any) -> Any:
    """Shards of an older run in today's schema: the columns added since as nulls, counts written as floats
    then as integers (a count that is not whole stays a float, and the check after names the column)."""
    import pyarrow as pa

    for field in expected:
        if field.name not in table.schema.names and field.name in _ADDED_COLUMNS:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        elif field.name in table.schema.names and pa.types.is_integer(field.type):
            column = table.column(field.name)
            if pa.types.is_floating(column.type):
                with contextlib.suppress(pa.ArrowInvalid):
                    index = table.schema.get_field_index(field.name)
                    table = table.set_column(index, field, column.cast(field.type))
    return table


def _held(run_dir: Path) -> bool:
    """Whether a process holds the run folder's lock now (a run that says "running" is really running)."""
    try:
        with (run_dir / LOCK).open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:  # no lock file (a copy of the folder): no writer
        return False
    return False
