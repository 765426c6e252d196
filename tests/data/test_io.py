from pathlib import Path

import pandas as pd
import pytest

from medsent.core.errors import DataError
from medsent.data.io import read_table, write_table

ROWS = pd.DataFrame({"review": ["great drug, no pain", "made me sick"], "satisfaction": ["5", "1"]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".json", ".jsonl"])
def test_every_supported_format_round_trips(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows{suffix}"
    write_table(ROWS, path)
    frame = read_table(path).frame
    assert frame["review"].tolist() == ROWS["review"].tolist()
    assert [str(v) for v in frame["satisfaction"]] == ["5", "1"]


def test_json_object_of_records_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('{"reviews": [{"review": "fine", "rating": 3}]}')
    assert read_table(path).frame["review"].tolist() == ["fine"]


def test_missing_file_unknown_format_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "nope.csv")
    odd = tmp_path / "rows.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match=r"unknown data format '.xlsx'.*known: .csv"):
        read_table(odd)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(empty)


def test_non_utf8_bytes_are_repaired_and_counted_or_refused_when_strict(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("review,satisfaction\ncaf\xe9 was fine for me,3\n".encode("latin-1"))
    table = read_table(path)
    assert table.non_utf8_bytes == 1
    assert table.frame["review"][0].startswith("caf")
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_table(path, strict=True)


def test_corrupt_parquet_and_bad_json_are_one_line_errors(tmp_path: Path) -> None:
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match="cannot"):
        read_table(pq)
    js = tmp_path / "bad.json"
    js.write_text("[1, 2, 3]")
    with pytest.raises(DataError, match="objects"):
        read_table(js)
