"""The csv connector on its own: line numbers, exact raw text, quoting, wrong field counts."""

import pytest

from motorcade.errors import ConfigError
from motorcade.sources.base import PersonRecord, RejectedRow
from motorcade_sources_csv import CsvSource

SETTINGS = {"path": "c.csv", "person": {"key": "no", "identifiers": {"crm_id": "no", "phone": "mobile"},
                                         "attributes": {"note": "note"}}}


def test_rows_keep_position_and_raw_text(tmp_path):
    (tmp_path / "c.csv").write_text('no,mobile,note\nC1,138,"two\nlines"\nC2,139\nC3,137,ok\n', encoding="utf-8")
    records = [r for batch in CsvSource("crm", SETTINGS, tmp_path).read() for r in batch]
    assert isinstance(records[0], PersonRecord) and records[0].attributes == {"note": "two\nlines"}
    assert records[0].position == "line 2" and records[0].raw == 'C1,138,"two\nlines"'
    assert isinstance(records[1], RejectedRow) and records[1].position == "line 4"
    assert "expected 3 fields" in records[1].reason
    assert records[2].position == "line 5"
    again = CsvSource("crm", SETTINGS, tmp_path).reparse("line 5", "C3,137,ok")
    assert again[0].source_key == "C3"


def test_a_mapping_naming_a_missing_column_fails_with_the_columns_present(tmp_path):
    (tmp_path / "c.csv").write_text("no,phone\nC1,138\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mobile"):
        list(CsvSource("crm", SETTINGS, tmp_path).read())
