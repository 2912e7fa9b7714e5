"""The formats real test sets come in, each read and run end to end through ``attribution-explorer corpus``.

Every format holds the same three sentence pairs of the bundled translation test set; each run must give
the records, texts and numbers (saliency scores' AER against the gold alignment) that the JSON-lines run
gives. Row-level problems (a missing field on a later row, bytes that are not UTF-8) fail their row alone.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from attribution.corpus import FieldMap, load_run, read_records
from attribution.errors import InvalidInputError
from tests.support.corpus_data import translation_rows, write_jsonl

MODEL = "tiny-synth-translate"
ROWS = translation_rows(3)
WMT_ROWS = [{"translation": {"en": row["source"], "xx": row["target"]}, "alignment": row["alignment"]} for row in ROWS]
NESTED = ["--text-field", "translation.en", "--target-field", "translation.xx"]


def _cli_run(tmp_path: Path, name: str, *data_args: str) -> list[dict]:
    """Run the corpus command on ``data_args``; the run's rows as (record id, texts, AER) in record order."""
    from space.cli import main

    out = tmp_path / f"run-{name}"
    assert main(["corpus", "--model", MODEL, "--methods", "saliency", *data_args, "--out", str(out)]) == 0
    rows = sorted(load_run(out).rows, key=lambda row: row["row"])
    return [
        {key: row[key] for key in ("record_id", "status", "error", "source_text", "target_text", "aer")} for row in rows
    ]


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> list[dict]:
    """The reference: the same pairs as plain JSON lines."""
    folder = tmp_path_factory.mktemp("reference")
    rows = _cli_run(folder, "jsonl", "--data", str(write_jsonl(folder / "pairs.jsonl", ROWS)))
    assert [row["status"] for row in rows] == ["ok"] * 3 and all(0 <= row["aer"] <= 1 for row in rows)
    assert [row["target_text"] for row in rows] == [row["target"] for row in ROWS]
    return rows


def _write_delimited(path: Path, rows: list[dict], delimiter: str, *, bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _wmt_dataset_folder(folder: Path) -> Path:
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict, Features, Value

    features = Features({"translation": {"en": Value("string"), "xx": Value("string")}, "alignment": Value("string")})
    DatasetDict({"test": HFDataset.from_list(WMT_ROWS, features=features)}).save_to_disk(str(folder))
    return folder


def _parallel_files(folder: Path) -> list[str]:
    """FLORES-style: a file per language, one sentence per line, plus the Pharaoh alignment fast_align writes."""
    source = _write_lines(folder / "test.en", [row["source"] for row in ROWS])
    target = _write_lines(folder / "test.xx", [row["target"] for row in ROWS])
    links = _write_lines(folder / "test.align", [row["alignment"] for row in ROWS])
    return ["--data", str(source), "--target-data", str(target), "--alignment-data", str(links)]


def _data_args(fmt: str, folder: Path) -> list[str]:
    """Write ``ROWS`` in ``fmt`` into ``folder``; the CLI arguments that read it."""
    if fmt == "wmt-jsonl-gz":
        path = folder / "wmt.jsonl.gz"
        path.write_bytes(gzip.compress("".join(json.dumps(row) + "\n" for row in WMT_ROWS).encode()))
        return ["--data", str(path), *NESTED]
    if fmt == "wmt-parquet":
        pq.write_table(pa.Table.from_pylist(WMT_ROWS), folder / "wmt.parquet")
        return ["--data", str(folder / "wmt.parquet"), *NESTED]
    if fmt == "wmt-datasets-folder":
        return ["--data", str(_wmt_dataset_folder(folder / "wmt")), "--split", "test", *NESTED]
    if fmt == "json-array":
        (folder / "pairs.json").write_text(json.dumps(ROWS, indent=1), encoding="utf-8")
        return ["--data", str(folder / "pairs.json")]
    if fmt == "tsv":  # quotes inside a sentence are text in TSV
        return ["--data", str(_write_delimited(folder / "pairs.tsv", ROWS, "\t"))]
    if fmt == "csv-bom":
        return ["--data", str(_write_delimited(folder / "pairs.csv", ROWS, ",", bom=True))]
    if fmt == "tsv-bz2":
        plain = _write_delimited(folder / "plain.tsv", ROWS, "\t")
        (folder / "pairs.tsv.bz2").write_bytes(bz2.compress(plain.read_bytes()))
        return ["--data", str(folder / "pairs.tsv.bz2")]
    if fmt == "parallel-text":
        return _parallel_files(folder)
    raise AssertionError(fmt)


FORMATS = [
    "wmt-jsonl-gz",
    "wmt-parquet",
    "wmt-datasets-folder",
    "json-array",
    "tsv",
    "csv-bom",
    "tsv-bz2",
    "parallel-text",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_runs_through_the_cli_to_the_json_lines_numbers(
    fmt: str, expected: list[dict], tmp_path: Path
) -> None:
    rows = _cli_run(tmp_path, fmt, *_data_args(fmt, tmp_path))
    assert rows == expected


def test_a_bom_and_nested_fields_name_the_fields_as_written(tmp_path: Path) -> None:
    path = _write_delimited(tmp_path / "bom.csv", ROWS, ",", bom=True)
    assert read_records(path)[0].text == ROWS[0]["source"]  # the first column is 'source', not '\ufeffsource'
    wmt = write_jsonl(tmp_path / "wmt.jsonl", WMT_ROWS)
    with pytest.raises(InvalidInputError, match=r"no text field 'source'; .* 'translation\.en', 'translation\.xx'"):
        read_records(wmt)


def test_named_fields_are_checked_on_every_row_and_a_missing_one_fails_that_row(tmp_path: Path) -> None:
    rows = [dict(row) for row in WMT_ROWS]
    del rows[1]["translation"]["xx"]  # a named target missing on a later row must not turn into generation
    del rows[2]["translation"]
    fields = FieldMap(text="translation.en", target="translation.xx", required=frozenset({"text", "target"}))
    records = read_records(write_jsonl(tmp_path / "wmt.jsonl", rows), fields)
    assert records[0].problem is None and records[0].target == ROWS[0]["target"]
    assert records[1].problem == "the row has no target field 'translation.xx'"
    assert records[2].problem == (
        "the row has no text field 'translation.en'; the row has no target field 'translation.xx'"
    )


def test_bytes_that_are_not_utf8_fail_their_row_alone_in_every_text_format(tmp_path: Path) -> None:
    good = [row["source"].encode() for row in ROWS]
    bad = b"the dog \xff\xfe sees"
    lines = [good[0], bad, good[2]]
    (tmp_path / "src.txt").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "src.tsv").write_bytes(b"source\n" + b"\n".join(lines) + b"\n")
    (tmp_path / "src.jsonl.gz").write_bytes(gzip.compress(b"".join(b'{"source": "' + line + b'"}\n' for line in lines)))
    sch = pa.schema([("source", pa.string())])
    binary = pa.array(lines, pa.binary())
    pq.write_table(pa.Table.from_arrays([pa.Array.from_buffers(pa.string(), 3, binary.buffers())], schema=sch),
                   tmp_path / "src.parquet")  # fmt: skip
    for name in ("src.txt", "src.tsv", "src.jsonl.gz", "src.parquet"):
        records = read_records(tmp_path / name)
        assert [r.problem is None for r in records] == [True, False, True], name
        assert "character 9 is a lone surrogate" in records[1].problem, name
        assert records[2].text == ROWS[2]["source"], name


def test_parallel_files_of_different_lengths_and_compression_bombs_are_one_line(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "a.en", ["one", "two", "three"])
    target = _write_lines(tmp_path / "a.xx", ["uno", "dos"])
    with pytest.raises(InvalidInputError, match=r"differ in length \(a\.xx ended at line 2\)"):
        read_records(source, target_path=target)
    with pytest.raises(InvalidInputError, match="give the target file too"):
        read_records(source, alignment_path=target)
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b'{"source": "' + b"a" * 50_000_000 + b'"}\n'))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(InvalidInputError, match=r"bomb\.jsonl\.gz expands to .* at most 1\.0 MB"):
        read_records(bomb, max_decoded_bytes=1_000_000, max_bytes=1_000_000)
    (tmp_path / "cut.jsonl.gz").write_bytes(
        gzip.compress(b"".join(b'{"source": "%d"}\n' % i for i in range(5000)))[:2000]
    )
    with pytest.raises(InvalidInputError, match="not a readable compressed file"):
        read_records(tmp_path / "cut.jsonl.gz")
