"""Read a corpus: JSON lines, CSV, Parquet or a Hugging Face ``datasets`` dataset saved to disk.

Every row becomes a :class:`Record` with a record id (a given id field, or the row number), the
text (prompt or source sentence), and optionally a target, a gold word alignment (Pharaoh
``"0-0 1-2"`` or a list of ``[source, target]`` pairs) and a contrast target. Field names are
configurable (:class:`FieldMap`). A row whose fields cannot be used (a missing text, a number
where text belongs, invalid UTF-8 or a lone surrogate, a NUL character, a cell longer than
``max_cell_chars``, a JSON integer too long for Python to read) still becomes a record, with its
``problem`` set to one line saying what is wrong, so the run writes it as a failed record instead
of stopping. Problems with the file as a whole (not found, unreadable, a field that no row has,
duplicate ids, over the size limits) are one :class:`InvalidInputError`.

Reading is bounded before anything is materialised: a Parquet file's footer says how many rows it
has and how large its columns are once decompressed, which is checked against ``max_rows`` and
``max_decoded_bytes`` before a page is decoded (a few kilobytes of zstd can hold hundreds of
megabytes of text); text columns are read dictionary-encoded and a cell over the cap never becomes
a Python string. JSON lines and CSV do not expand: their size on disk is what they decode to.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import sys
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.errors import InvalidInputError
from attribution.validation import check_regular_file, check_unicode

FORMATS = ("jsonl", "csv", "parquet", "hf")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
#: Longest cell read as text when the caller sets no cap (the CLI): beyond any model's context, yet bounded.
DEFAULT_MAX_CELL_CHARS = 10_000_000
#: Rows decoded from Parquet at a time.
_PARQUET_BATCH_ROWS = 1024
#: Bytes of page headers and encodings a Parquet column chunk may add to its values.
_PAGE_SLACK_BYTES = 1_000_000
#: Bytes a decoded non-text Parquet value may take (an integer, a list offset, its levels): bounds lists of numbers.
_BYTES_PER_VALUE = 16
#: ``csv.field_size_limit`` is one setting for the whole process: readers raise it one at a time.
_CSV_LIMIT_LOCK = threading.Lock()


class MissingFieldError(InvalidInputError):
    """The data has no field of the name given: the request is wrong, not the file (which another name can read)."""


@dataclass(frozen=True)
class Unreadable:
    """A value a reader could not turn into data (a JSON integer of thousands of digits, an over-long
    Parquet cell left encoded): it stands in the row so that the record says why, one line."""

    #: what the value is, completing "the text field 'source' ..."
    problem: str


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

    def __post_init__(self) -> None:
        """A record holds only text that can be written (UTF-8): a field with a lone surrogate is dropped
        and named in ``problem``, an id with one is kept escaped, so one bad record never stops a run."""
        problems = [self.problem] if self.problem else []
        for role, described in _ROLES.items():
            value = getattr(self, role)
            problem = _surrogate_problem(value, described) if value else None
            if problem:
                object.__setattr__(self, role, "" if role == "text" else None)
                problems.append(problem)
        id_problem = _surrogate_problem(self.record_id, "record id")
        if id_problem:
            object.__setattr__(self, "record_id", self.record_id.encode("utf-8", "backslashreplace").decode("utf-8"))
            problems.append(id_problem)
        object.__setattr__(self, "problem", "; ".join(problems) or None)

    @property
    def content_hash(self) -> str:
        """A fingerprint of the inputs, so a resumed run can tell that a record id still means the same row."""
        payload = json.dumps([self.text, self.target, self.alignment, self.contrast], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


_ROLES = {"text": "input text", "target": "target", "alignment": "gold alignment", "contrast": "contrast target"}


def _surrogate_problem(text: str, role: str) -> str | None:
    """The one-line reason ``text`` is not valid Unicode (a lone surrogate), or None."""
    try:
        check_unicode(text, role)
    except InvalidInputError as error:
        return str(error)
    return None


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


@dataclass(frozen=True)
class _Limits:
    """What one read may hold (``None``: no cap): the caps of :func:`read_records`, handed to the row readers."""

    name: str  # the file as messages name it
    limit: int | None
    max_rows: int | None
    decoded_bytes: int | None
    cell_chars: int | None


def read_records(
    path: str | Path,
    fields: FieldMap | None = None,
    *,
    fmt: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    max_rows: int | None = None,
    max_bytes: int | None = None,
    max_decoded_bytes: int | None = None,
    max_cell_chars: int | None = DEFAULT_MAX_CELL_CHARS,
    display_name: str | None = None,
) -> list[Record]:
    """The records of a data file or dataset folder, in order.

    ``limit`` keeps the first rows (a user's choice); ``max_rows``, ``max_bytes`` (the file as stored) and
    ``max_decoded_bytes`` (what it decompresses to) are hard caps (an operator's, for uploads): data beyond
    them is an error, not silently cut. A cell longer than ``max_cell_chars`` characters makes its record
    fail (its text is never kept). ``display_name`` replaces the path in messages (uploads must never show
    a server path).
    """
    fields = fields or FieldMap()
    source = Path(path)
    name = display_name or source.name
    if not source.exists():  # the path tried, in full (an upload: its own name only, never a server path)
        raise InvalidInputError(f"Data not found: {display_name or source.absolute()}.")
    if not source.is_dir():
        check_regular_file(source, name)  # a device (/dev/zero), a pipe: no end, no size
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise InvalidInputError(f"Unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file()) if source.is_dir() else source.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise InvalidInputError(f"{name} is {size / 1e6:.1f} MB; at most {max_bytes / 1e6:.1f} MB are accepted here.")
    if fmt != "parquet":  # text and Arrow files decode to their size on disk; Parquet says so in its footer
        _check_decoded(size, max_decoded_bytes, name)
    limits = _Limits(name, limit, max_rows, max_decoded_bytes, max_cell_chars)
    records = []
    seen: dict[str, int] = {}
    with contextlib.closing(_ROW_READERS[fmt](source, split, fields, limits)) as rows:
        for row_number, row in enumerate(rows):
            if limit is not None and row_number >= limit:
                break
            if max_rows is not None and row_number >= max_rows:
                raise InvalidInputError(_too_many_rows(name, max_rows))
            if not isinstance(row, Mapping):
                kind = row.problem if isinstance(row, Unreadable) else type(row).__name__
                raise InvalidInputError(f"{name}, row {row_number + 1}: expected an object with fields, not {kind}.")
            if row_number == 0:
                _check_fields(row, fields, name)
            record = _record(row, row_number, fields, max_cell_chars)
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


def _too_many_rows(name: str, max_rows: int) -> str:
    return f"{name} has more than {max_rows} rows; at most {max_rows} are accepted here."


def _check_decoded(n_bytes: int, max_decoded_bytes: int | None, name: str) -> None:
    if max_decoded_bytes is not None and n_bytes > max_decoded_bytes:
        raise InvalidInputError(
            f"{name} expands to {n_bytes / 1e6:.1f} MB of data; at most {max_decoded_bytes / 1e6:.1f} MB are "
            "accepted here."
        )


def _check_fields(first: Mapping[str, Any], fields: FieldMap, name: str) -> None:
    """A required field that the first row lacks is a typo, not a row-level problem: say which fields exist."""
    for role, field in fields.names().items():
        if (role in fields.required or role in ("text", "id", "contrast")) and field not in first:
            available = ", ".join(repr(k) for k in list(first)[:20]) or "none"
            raise MissingFieldError(f"{name} has no {role} field {field!r}; its rows have the fields {available}.")


def _record(row: Mapping[str, Any], row_number: int, fields: FieldMap, max_chars: int | None) -> Record:
    problems = []

    def text_field(role: str, field: str | None, required: bool) -> str | None:
        if not field:
            return None
        value = row.get(field)
        if value is None or (isinstance(value, float) and value != value):  # missing, null or a CSV/Parquet NaN
            if required:
                problems.append(f"the {role} field {field!r} is empty")
            return None
        problem = _value_problem(value, max_chars)
        if problem:
            problems.append(f"the {role} field {field!r} {problem}")
            return None
        return value

    record_id = str(row_number)
    if fields.id and row.get(fields.id) is not None:
        value = row[fields.id]
        problem = _value_problem(value if isinstance(value, str | Unreadable) else str(value), max_chars)
        if problem:  # the row number stands in, as for a row without an id
            problems.append(f"the id field {fields.id!r} {problem}")
        else:
            record_id = str(value)
    text = text_field("text", fields.text, required=True)
    target = text_field("target", fields.target, required=False)
    contrast = text_field("contrast", fields.contrast, required=False)
    alignment = None
    if fields.alignment and row.get(fields.alignment) is not None:
        value = row[fields.alignment]
        alignment = value if isinstance(value, Unreadable) else _alignment_text(value)
        if alignment is None:
            problems.append(f"the alignment field {fields.alignment!r} is neither 'i-j ...' text nor a list of pairs")
        else:
            problem = _value_problem(alignment, max_chars)
            if problem:
                problems.append(f"the alignment field {fields.alignment!r} {problem}")
                alignment = None
    assert not isinstance(alignment, Unreadable)  # an unreadable value is always a problem, dropped above
    return Record(
        record_id=record_id,
        row=row_number,
        text=text or "",
        target=target or None,
        alignment=alignment,
        contrast=contrast or None,
        problem="; ".join(problems) or None,
    )


def _value_problem(value: Any, max_chars: int | None) -> str | None:
    """Why ``value`` is not usable text, completing "the text field 'source' ...", or None.

    Lone surrogates are left to :class:`Record`, which checks every record however it was made.
    """
    if isinstance(value, Unreadable):
        return value.problem
    if not isinstance(value, str):
        return f"holds a value of type {type(value).__name__}, not text"
    if max_chars is not None and len(value) > max_chars:
        return _over_long(len(value), max_chars)
    nul = value.find("\0")
    if nul >= 0:
        return f"holds a NUL character (character {nul + 1}): binary data, not text"
    return None


def _over_long(n_chars: int, max_chars: int) -> str:
    return f"is {n_chars:,} characters long; at most {max_chars:,} are read here"


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


def _json_int(digits: str) -> int | Unreadable:
    """A JSON integer, or what it is when Python refuses to read one that long (4,300+ digits raise ValueError)."""
    try:
        return int(digits)
    except ValueError:
        return Unreadable(f"holds a whole number of {len(digits.lstrip('-')):,} digits, not text")


def _jsonl_rows(path: Path, split: str | None, fields: FieldMap, limits: _Limits) -> Generator[Any, None, None]:
    name = limits.name
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            # Bytes that are not UTF-8 inside a string become lone surrogates there: that field's problem.
            line = raw.decode("utf-8", "surrogateescape")
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_int=_json_int)
            except json.JSONDecodeError as error:
                undecodable = _surrogate_problem(line, "line") is not None
                reason = "not UTF-8 text" if undecodable else f"not valid JSON ({error.msg})"
                raise InvalidInputError(f"{name}, line {line_number}: {reason}.") from None
            except RecursionError:
                raise InvalidInputError(f"{name}, line {line_number}: JSON nested too deeply.") from None
            yield row


def _csv_rows(path: Path, split: str | None, fields: FieldMap, limits: _Limits) -> Generator[Any, None, None]:
    # Undecodable bytes become lone surrogates in their cell, which fails that record alone (see Record).
    try:
        with _csv_field_limit(), path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
            yield from csv.DictReader(handle)
    except csv.Error as error:
        raise InvalidInputError(f"{limits.name}: not valid CSV ({error}).") from None


@contextlib.contextmanager
def _csv_field_limit() -> Iterator[None]:
    """Let the csv module read a cell of any length while this reader runs, so that an over-long cell fails its
    record (the file's size is capped by the caller) instead of stopping the whole file at 131,072 characters."""
    with _CSV_LIMIT_LOCK:
        previous = csv.field_size_limit(sys.maxsize)
        try:
            yield
        finally:
            csv.field_size_limit(previous)


def _parquet_rows(path: Path, split: str | None, fields: FieldMap, limits: _Limits) -> Generator[Any, None, None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(path).schema_arrow  # the footer only
        columns = [f for f in fields.names().values() if f in schema.names] or schema.names
        texts = [c for c in columns if _is_text_type(schema.field(c).type, pa)]
        parquet = pq.ParquetFile(path, read_dictionary=texts)  # text stays encoded: repeated values are not copied
        _check_parquet_size(parquet.metadata, columns, texts, limits)
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            yield from _batch_rows(batch, limits.cell_chars)
    except InvalidInputError:
        raise
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise InvalidInputError(f"{limits.name}: not a readable Parquet file ({first}).") from None


def _is_text_type(kind: Any, pa: Any) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _check_parquet_size(metadata: Any, columns: list[str], texts: list[str], limits: _Limits) -> None:
    """Refuse, from the footer alone, a file with more rows than accepted or whose columns decompress beyond a cap.

    A column chunk decodes to at least its uncompressed page size, and for numbers and lists (which run-length
    encoding can shrink to nothing) to its value count times a value's size; text columns are read
    dictionary-encoded, so neither is multiplied by repetition. Only the row groups the read reaches count.
    A text chunk larger than its values could be with every cell at the cell cap is refused too: it is not
    decoded only to find an over-long cell.
    """
    rows = metadata.num_rows if limits.limit is None else min(metadata.num_rows, limits.limit)
    if limits.max_rows is not None and rows > limits.max_rows:
        raise InvalidInputError(_too_many_rows(limits.name, limits.max_rows))
    decoded, reached = 0, 0
    for group in range(metadata.num_row_groups):
        if reached >= rows:
            break
        row_group = metadata.row_group(group)
        reached += row_group.num_rows
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            column = chunk.path_in_schema.split(".")[0]
            if column in columns:
                decoded += max(chunk.total_uncompressed_size, chunk.num_values * _BYTES_PER_VALUE)
            if column in texts and limits.cell_chars is not None:
                _check_text_chunk(chunk, column, limits.cell_chars, limits.name)
    _check_decoded(decoded, limits.decoded_bytes, limits.name)


def _check_text_chunk(chunk: Any, column: str, max_chars: int, name: str) -> None:
    # A character takes at most 4 bytes in UTF-8; a value its length prefix; pages their headers.
    most = chunk.num_values * (4 * max_chars + 4) + _PAGE_SLACK_BYTES
    if chunk.total_uncompressed_size > most:
        raise InvalidInputError(
            f"{name}: column {column!r} decompresses to {chunk.total_uncompressed_size / 1e6:.1f} MB, more than "
            f"{chunk.num_values:,} cell(s) of at most {max_chars:,} characters each can hold."
        )


def _batch_rows(batch: Any, max_chars: int | None) -> list[dict[str, Any]]:
    """The rows of a record batch as dicts; a text cell over ``max_chars`` becomes :class:`Unreadable` unread."""
    columns = {name: _column_values(batch.column(name), max_chars) for name in batch.schema.names}
    return [{name: values[i] for name, values in columns.items()} for i in range(batch.num_rows)]


def _column_values(column: Any, max_chars: int | None) -> list[Any]:
    """A column's values; a text column (dictionary-encoded) is turned into Python text one distinct value at a
    time, the over-long ones never, and rows repeating a value share one string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(column, pa.DictionaryArray):
        return column.to_pylist()
    dictionary = column.dictionary
    is_text = pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)
    lengths = (pc.utf8_length if is_text else pc.binary_length)(dictionary).to_pylist()
    over = [max_chars is not None and n is not None and n > max_chars for n in lengths]
    kept = pc.if_else(pa.array(over, pa.bool_()), pa.scalar(None, dictionary.type), dictionary).to_pylist()
    values = [
        Unreadable(_over_long(n, max_chars)) if cut and max_chars is not None else v
        for n, cut, v in zip(lengths, over, kept, strict=True)
    ]
    return [None if i is None else values[i] for i in column.indices.to_pylist()]


def _hf_rows(path: Path, split: str | None, fields: FieldMap, limits: _Limits) -> Generator[Any, None, None]:
    name = limits.name
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
