"""Hostile corpus data on the command line and in the reader: bounded before decoding, one bad record never stops a run.

A record bad in one field (a lone surrogate, invalid UTF-8 bytes, a JSON integer Python refuses to
read, NUL, an over-long cell, the wrong type) is written as failed with a one-line error and every
other record is done, with the numbers a run of the good records alone gives; the same command then
resumes. A Parquet file whose one cell decompresses to 300 MB is refused from its footer, unread.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from attribution.corpus import FieldMap, Record, load_run, read_records
from attribution.errors import InvalidInputError
from space.cli import main
from tests.support.corpus_data import translation_rows
from tests.support.hostile_inputs import bad_record_lines, parquet_bomb
from tests.support.paths import REPO

MODEL = "tiny-synth-translate"
#: The CLI's cell cap (the reader's default): the over-long case is a 10-million-character line.
CLI_CELL_CAP = 10_000_000


def _lines(rows: list[dict]) -> list[bytes]:
    return [json.dumps(row, ensure_ascii=False).encode("utf-8") for row in rows]


def _mixed_corpus(path: Path, max_chars: int) -> tuple[Path, dict[str, str], list[str]]:
    """Good translation pairs with every bad line among them: the file, record id → expected error, good ids."""
    good = _lines(translation_rows(5))
    bad = bad_record_lines(max_chars)
    lines, expected, good_ids = [], {}, []
    for i, line in enumerate(good):
        good_ids.append(str(len(lines)))
        lines.append(line)
        for case in bad[i * 2 : i * 2 + 2]:  # bad ones between good ones, not at the end
            expected[str(len(lines))] = case.expect
            lines.append(case.value)
    assert len(expected) == len(bad)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected, good_ids


def test_every_bad_field_fails_its_record_with_one_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path, expected, good_ids = _mixed_corpus(tmp_path / "mixed.jsonl", max_chars=100)
    records = {record.record_id: record for record in read_records(path, max_cell_chars=100)}
    assert sorted(records, key=int) == sorted([*expected, *good_ids], key=int)
    for record_id, expect in expected.items():
        problem = records[record_id].problem
        assert problem and "\n" not in problem and re.search(expect, problem), (record_id, problem)
        assert records[record_id].content_hash  # the fingerprint a resumed run compares: never an error
    pairs = translation_rows(5)
    for record_id, pair in zip(good_ids, pairs, strict=True):
        record = records[record_id]
        assert (record.problem, record.text, record.target, record.alignment) == (
            None,
            pair["source"],
            pair["target"],
            pair["alignment"],
        )


def test_a_record_made_by_hand_with_a_lone_surrogate_can_be_written() -> None:
    record = Record("r\ud800", 0, "the cat \ud800", target="ka")
    assert record.text == "" and record.target == "ka" and record.record_id == "r\\ud800"
    assert record.problem == (
        "The input text is not valid text: character 9 is a lone surrogate (invalid UTF-8 in the input). Fix the "
        "encoding and try again.; The record id is not valid text: character 2 is a lone surrogate (invalid UTF-8 "
        "in the input). Fix the encoding and try again."
    )
    assert len(record.content_hash) == 16


def test_csv_cells_that_are_bad_fail_their_records_only(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    long_cell = "a " * 100_000  # longer than the csv module's own 131,072-character field limit
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "target"])
        writer.writerows([["the cat sees a bird", "ka"], [long_cell, "ka"], ["the \0 dog", "ka"], ["a dog", "mi"]])
    raw = path.read_bytes().replace(b"a dog", b"a \xffdog")  # invalid UTF-8 in the last row only
    path.write_bytes(raw + b"the bird,avi\n")
    records = read_records(path, max_cell_chars=150_000)
    assert [(r.text, r.problem) for r in records] == [
        ("the cat sees a bird", None),
        ("", "the text field 'source' is 200,000 characters long; at most 150,000 are read here"),
        ("", "the text field 'source' holds a NUL character (character 5): binary data, not text"),
        (
            "",
            "The input text is not valid text: character 3 is a lone surrogate (invalid UTF-8 in the input). Fix the "
            "encoding and try again.",
        ),
        ("the bird", None),
    ]
    assert csv.field_size_limit() == 131_072  # the process-wide setting is left as it was


def test_an_over_long_parquet_cell_fails_its_record_without_becoming_a_python_string(tmp_path: Path) -> None:
    rows = {"source": ["q" * 5000, "the cat", "q" * 5000, "a dog"], "id": ["a", "b", "c", "d"]}
    pq.write_table(pa.table(rows), tmp_path / "pairs.parquet")  # dictionary-encoded: the long value is stored once
    records = read_records(tmp_path / "pairs.parquet", FieldMap(id="id"), max_cell_chars=4000)
    assert [(r.record_id, r.text, r.problem) for r in records] == [
        ("a", "", "the text field 'source' is 5,000 characters long; at most 4,000 are read here"),
        ("b", "the cat", None),
        ("c", "", "the text field 'source' is 5,000 characters long; at most 4,000 are read here"),
        ("d", "a dog", None),
    ]


def test_a_parquet_bomb_is_refused_from_its_footer_without_decoding_it(tmp_path: Path) -> None:
    """One zstd-compressed row of 300 million characters in a file of about 10 kB: refused before a page is
    decoded, in a fresh process whose peak memory is measured (the reader alone, nothing else in it)."""
    bomb = tmp_path / "bomb.parquet"
    bomb.write_bytes(parquet_bomb())
    assert bomb.stat().st_size < 20_000
    script = (
        "import resource, sys\n"
        "from attribution.corpus import read_records\n"
        "from attribution.errors import InvalidInputError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for caps in ({}, {'max_decoded_bytes': 20_000_000, 'max_cell_chars': 2560}):\n"
        "    try:\n"
        "        read_records(sys.argv[1], **caps)\n"
        "    except InvalidInputError as error:\n"
        "        print(error)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, cwd=REPO, timeout=120, check=True
    )
    cli_line, upload_line, growth_mib = done.stdout.strip().splitlines()
    assert cli_line == (
        "bomb.parquet: column 'source' decompresses to 300.0 MB, more than 1 cell(s) of at most 10,000,000 "
        "characters each can hold."
    )
    assert upload_line == (
        "bomb.parquet: column 'source' decompresses to 300.0 MB, more than 1 cell(s) of at most 2,560 characters "
        "each can hold."
    )
    assert int(growth_mib) < 50, f"reading the bomb grew the reader's peak memory by {growth_mib} MiB"


def test_decoded_and_row_caps_refuse_a_parquet_file_before_reading_it(tmp_path: Path) -> None:
    rows = translation_rows(6)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    with pytest.raises(InvalidInputError, match=r"^pairs\.parquet has more than 5 rows; at most 5 are accepted here"):
        read_records(tmp_path / "pairs.parquet", max_rows=5)
    assert len(read_records(tmp_path / "pairs.parquet", max_rows=5, limit=5)) == 5  # the user's own first rows
    with pytest.raises(InvalidInputError, match=r"^pairs\.parquet expands to 0\.0 MB of data; at most 0\.0 MB are"):
        read_records(tmp_path / "pairs.parquet", max_decoded_bytes=100)


def _corpus(data: Path, out: Path, *extra: str) -> list[str]:
    return ["corpus", "--model", MODEL, "--methods", "saliency", "--data", str(data), "--out", str(out), *extra]


def test_the_cli_runs_every_good_record_fails_each_bad_one_and_resumes(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data, expected, good_ids = _mixed_corpus(tmp_path / "mixed.jsonl", max_chars=CLI_CELL_CAP)
    out = tmp_path / "run"
    assert main(_corpus(data, out, "--limit", "4")) == 0  # stops after the first bad records: resumed below
    first = {row["record_id"] for row in load_run(out).rows}
    assert first == {"0", "1", "2", "3"}
    assert main(_corpus(data, out)) == 0, capfd.readouterr().err
    stderr = capfd.readouterr().err
    total = len(expected) + len(good_ids)
    assert f"{total - 4} records in" in stderr and f"{len(expected) - 2} failed, 4 already done" in stderr
    rows = {row["record_id"]: row for row in load_run(out).rows}
    assert len(load_run(out).rows) == total  # nothing written twice
    for record_id, expect in expected.items():
        assert rows[record_id]["status"] == "error" and re.search(expect, rows[record_id]["error"]), rows[record_id]
    # The good records are done, with the numbers a run of them alone gives.
    alone = tmp_path / "good.jsonl"
    alone.write_bytes(b"\n".join(_lines(translation_rows(5))) + b"\n")
    assert main(_corpus(alone, tmp_path / "alone")) == 0
    reference = sorted(load_run(tmp_path / "alone").rows, key=lambda row: row["row"])
    for record_id, row in zip(good_ids, reference, strict=True):
        mine = rows[record_id]
        assert mine["status"] == row["status"] == "ok" and mine["source_text"] == row["source_text"]
        assert (mine["aer"], mine["mean_probability"]) == pytest.approx((row["aer"], row["mean_probability"]))
    assert main(_corpus(data, out)) == 0  # and once more: everything already done, nothing rerun
    assert "0 records in" in capfd.readouterr().err and len(load_run(out).rows) == total
