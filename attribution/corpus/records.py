"""Read a corpus: JSON lines, CSV, Parquet or a Hugging Face ``datasets`` dataset saved to disk.

Every row becomes a :class:`Record` with a record id (a given id field, or the row number), the
text (prompt or source sentence), and optionally a target, a gold word alignment (Pharaoh
``"0-0 1-2"`` or a list of ``[source, target]`` pairs) and a contrast target. Field names are
configurable (:class:`FieldMap`). A row whose fields cannot be used (a missing text, a number
where text belongs) still becomes a record, with its ``problem`` set, so the run writes it as a
failed record instead of stopping. Problems with the file as a whole (not found, unreadable, a
field that no row has, duplicate ids, over the size limits) are one :class:`InvalidInputError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.errors import InvalidInputError
from attribution.validation import check_regular_file

FORMATS = ("jsonl", "csv", "parquet", "hf")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class FieldMap:
    """Which field of a row holds what; ``None`` for an optional field means the data has none.

    ``required`` names the roles whose field must exist (checked on the first row, so a typo in a
    field name is one clear error): the text always, and every role a user named explicitly. The
    default target and alignment fields may be absent from the data altogether.
    """

    text: str = "source"
    target: str | None = "target"
    alignment: str | None = "alignment"
    contrast: str | None = None
    id: str | None = None
    required: frozenset[str] = frozenset({"text"})

    def names(self) -> dict[str, str]:
        """Role → field name, for the fields that are set."""
        roles = {"text": self.text, "target": self.target, "alignment": self.alignment, "contrast": self.contrast}
        roles["id"] = self.id
        return {role: name for role, name in roles.items() if name}


@dataclass(frozen=True)
class Record:
    """One row of the corpus, ready for the per-record task."""

    record_id: str
    row: int
    text: str
    target: str | None = None
    alignment: str | None = None
    contrast: str | None = None
    #: why the row cannot be run (it is then written as a failed record), or None
    problem: str | None = None

    @property
    def content_hash(self) -> str:
        """A fingerprint of the inputs, so a resumed run can tell that a record id still means the same row."""
        payload = json.dumps([self.text, self.target, self.alignment, self.contrast], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def detect_format(path: Path) -> str:
    """``hf`` for a folder written by ``datasets``' ``save_to_disk``, else from the file's suffix."""
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return "hf"
        raise InvalidInputError(f"{path.name} is a folder but not a dataset saved with datasets' save_to_disk.")
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"Cannot tell the format of {path.name!r} from its suffix; use .jsonl, .csv or .parquet, or give --format."
        )
    return fmt


def read_records(
    path: str | Path,
    fields: FieldMap | None = None,
    *,
    fmt: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    max_rows: int | None = None,
    max_bytes: int | None = None,
    display_name: str | None = None,
) -> list[Record]:
    """The records of a data file or dataset folder, in order.

    ``limit`` keeps the first rows (a user's choice); ``max_rows`` and ``max_bytes`` are hard caps
    (an operator's, for uploads): data beyond them is an error, not silently cut. ``display_name``
    replaces the path in messages (uploads must never show a server path).
    """
    fields = fields or FieldMap()
    source = Path(path)
    name = display_name or source.name
    if not source.exists():
        raise InvalidInputError(f"Data not found: {name}.")
    if not source.is_dir():
        check_regular_file(source, name)  # a device (/dev/zero), a pipe: no end, no size
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise InvalidInputError(f"Unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if max_bytes is not None:
        size = (
            sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
            if source.is_dir()
            else source.stat().st_size
        )
        if size > max_bytes:
            raise InvalidInputError(
                f"{name} is {size / 1e6:.1f} MB; at most {max_bytes / 1e6:.1f} MB are accepted here."
            )
    rows = _ROW_READERS[fmt](source, name, split, fields)
    records = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(rows):
        if limit is not None and row_number >= limit:
            break
        if max_rows is not None and row_number >= max_rows:
            raise InvalidInputError(f"{name} has more than {max_rows} rows; at most {max_rows} are accepted here.")
        if not isinstance(row, Mapping):
            raise InvalidInputError(
                f"{name}, row {row_number + 1}: expected an object with fields, not {type(row).__name__}."
            )
        if row_number == 0:
            _check_fields(row, fields, name)
        record = _record(row, row_number, fields)
        if record.record_id in seen:
            raise InvalidInputError(
                f"{name}: record id {record.record_id!r} appears twice (rows {seen[record.record_id] + 1} and "
                f"{row_number + 1}); record ids must be unique."
            )
        seen[record.record_id] = row_number
        records.append(record)
    if not records:
        raise InvalidInputError(f"{name} holds no records.")
    return records


def _check_fields(first: Mapping[str, Any], fields: FieldMap, name: str) -> None:
    """A required field that the first row lacks is a typo, not a row-level problem: say which fields exist."""
    for role, field in fields.names().items():
        if (role in fields.required or role in ("text", "id", "contrast")) and field not in first:
            available = ", ".join(repr(k) for k in list(first)[:20]) or "none"
            raise InvalidInputError(f"{name} has no {role} field {field!r}; its rows have the fields {available}.")


def _record(row: Mapping[str, Any], row_number: int, fields: FieldMap) -> Record:
    record_id = str(row[fields.id]) if fields.id and row.get(fields.id) is not None else str(row_number)
    problems = []

    def text_field(role: str, field: str | None, required: bool) -> str | None:
        if not field:
            return None
        value = row.get(field)
        if value is None or (isinstance(value, float) and value != value):  # missing, null or a CSV/Parquet NaN
            if required:
                problems.append(f"the {role} field {field!r} is empty")
            return None
        if not isinstance(value, str):
            kind = type(value).__name__
            problems.append(f"the {role} field {field!r} holds a value of type {kind}, not text")
            return None
        return value

    text = text_field("text", fields.text, required=True)
    target = text_field("target", fields.target, required=False)
    contrast = text_field("contrast", fields.contrast, required=False)
    alignment = None
    if fields.alignment and row.get(fields.alignment) is not None:
        alignment = _alignment_text(row[fields.alignment])
        if alignment is None:
            problems.append(f"the alignment field {fields.alignment!r} is neither 'i-j ...' text nor a list of pairs")
    return Record(
        record_id=record_id,
        row=row_number,
        text=text or "",
        target=target or None,
        alignment=alignment,
        contrast=contrast or None,
        problem="; ".join(problems) or None,
    )


def _alignment_text(value: Any) -> str | None:
    """Pharaoh text as given, or ``[[0, 0], [1, 2]]`` pairs written as ``"0-0 1-2"``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(i, int) for i in pair) for pair in value
    ):
        return " ".join(f"{s}-{t}" for s, t in value)
    if hasattr(value, "tolist"):  # a numpy array from Parquet
        return _alignment_text(value.tolist())
    return None


def _jsonl_rows(path: Path, name: str, split: str | None, fields: FieldMap) -> Iterator[Any]:
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError(f"{name}, line {line_number}: not UTF-8 text.") from None
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise InvalidInputError(f"{name}, line {line_number}: not valid JSON ({error.msg}).") from None
            except RecursionError:
                raise InvalidInputError(f"{name}, line {line_number}: JSON nested too deeply.") from None


def _csv_rows(path: Path, name: str, split: str | None, fields: FieldMap) -> Iterator[Any]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle)
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name}: not UTF-8 text.") from None
    except csv.Error as error:
        raise InvalidInputError(f"{name}: not valid CSV ({error}).") from None


def _parquet_rows(path: Path, name: str, split: str | None, fields: FieldMap) -> Iterator[Any]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        wanted = [f for f in fields.names().values() if f in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(columns=wanted or None):
            yield from batch.to_pylist()
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"{name}: not a readable Parquet file ({str(error).splitlines()[0][:200]}).") from None


def _hf_rows(path: Path, name: str, split: str | None, fields: FieldMap) -> Iterator[Any]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise InvalidInputError(
            "Reading a dataset folder needs the `datasets` package: pip install 'attribution-explorer[corpus]'."
        ) from None
    try:
        dataset = load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as error:
        raise InvalidInputError(
            f"{name}: not a readable dataset folder ({str(error).splitlines()[0][:200]})."
        ) from None
    if isinstance(dataset, DatasetDict):
        splits = list(dataset)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in dataset:
            raise InvalidInputError(f"{name} has the splits {', '.join(splits)}: choose one with --split.")
        dataset = dataset[split]
    elif split is not None:
        raise InvalidInputError(f"{name} is a single dataset without splits: leave out --split.")
    yield from dataset


_ROW_READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows, "hf": _hf_rows}
