"""Car transfers (``[sources.X.transfer]``): a sale closes the seller's ownership and opens the buyer's.
A VIN mapped as a person identifier is a `check` warning."""

import datetime as dt

import pytest
from click.testing import CliRunner

from motorcade.errors import ConfigError
from motorcade.sources.clean import vin_check_digit
from motorcade.sources.ingest import Ingestor
from motorcade.sources.mapping import RowMapping, mapping_warnings
from motorcade.store import open_store
from motorcade.testing import dump_database
from motorcade_sources_csv import CsvSource


def vin(serial: str) -> str:
    body = "LBV3A5100R" + serial
    return body[:8] + vin_check_digit(body) + body[9:]


CAR1, CAR2, CAR3 = vin("SP00001"), vin("SP00002"), vin("SP00003")
DMS = {
    "path": "dms.csv",
    "person": {"key": "customer_id", "identifiers": {"dms_customer_id": "customer_id", "phone": "mobile"}},
    "car": {"vin": "vin", "brand": "brand", "model": "model", "owned_from": "owned_from"},
}
TRANSFERS = {
    "path": "transfers.csv",
    "transfer": {"vin": "vin", "date": "sold_on",
                 "from_owner": {"dms_customer_id": "seller_id"},
                 "to_owner": {"dms_customer_id": "buyer_id", "phone": "buyer_mobile"}},
}


def write(tmp_path, name, rows):
    (tmp_path / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


def ownerships(store):
    return sorted(store.conn.execute(
        "SELECT o.vin, i.value, o.valid_from, o.valid_to FROM ownerships o JOIN identifiers i "
        "ON i.person_id = o.person_id AND i.type = 'dms_customer_id' ORDER BY o.vin, o.valid_from").fetchall(),
        key=lambda r: (r[0], r[2] or "", r[1]))


def test_a_transfer_closes_the_sellers_ownership_and_opens_the_buyers(tmp_path):
    write(tmp_path, "dms.csv", ["customer_id,mobile,vin,brand,model,owned_from",
                                f"D1,13912340001,{CAR1},BMW,X3,2021-03-01",
                                f"D2,13912340002,{CAR2},BMW,X5,",  # undated ownership
                                f"D3,13912340003,{CAR3},BMW,i3,2020-01-01"])
    write(tmp_path, "transfers.csv", ["vin,seller_id,buyer_id,buyer_mobile,sold_on",
                                      f"{CAR1},D1,D9,13912340009,2025-06-01",
                                      f"{CAR2},D2,D1,,2025-07-15",
                                      f"{CAR3},D3,D8,,",  # no date: the seller's ownership ends on the day of ingest
                                      f"{vin('SP00099')},D3,D8,,2025-01-01"])  # a car nobody described
    store = open_store(tmp_path / "s.db")
    ing = Ingestor(store, now=dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc))
    ing.ingest(CsvSource("dms", DMS, tmp_path))
    summary = ing.ingest(CsvSource("transfers", TRANSFERS, tmp_path))
    assert summary.rejected == 1
    (row,) = store.list_quarantine(source="transfers")
    assert "SP00099" in row.reason and "not known" in row.reason
    today = "2026-01-05"  # the ingest date (Ingestor now) in the source zone
    assert ownerships(store) == sorted([
        (CAR1, "D1", "2021-03-01", "2025-06-01"), (CAR1, "D9", "2025-06-01", None),
        (CAR2, "D2", None, "2025-07-15"), (CAR2, "D1", "2025-07-15", None),
        (CAR3, "D3", "2020-01-01", today), (CAR3, "D8", None, None),
    ], key=lambda r: (r[0], r[2] or "", r[1]))
    # the buyer was named by a phone as well: one person
    assert store.person_of_identifier("phone", "+8613912340009") == store.person_of_identifier("dms_customer_id", "D9")
    # reading the export again, or the DMS export that still lists the sellers, changes nothing
    before = dump_database(tmp_path / "s.db")
    ing.ingest(CsvSource("transfers", TRANSFERS, tmp_path))
    ing.ingest(CsvSource("dms", DMS, tmp_path))
    assert dump_database(tmp_path / "s.db") == before


def test_transfer_mapping_needs_a_vin_and_both_owners():
    with pytest.raises(ConfigError, match="from_owner"):
        RowMapping("t", {"transfer": {"vin": "vin", "to_owner": {"phone": "buyer"}}})
    with pytest.raises(ConfigError, match="unknown field"):
        RowMapping("t", {"transfer": {"vin": "vin", "from_owner": {"phone": "a"}, "to_owner": {"phone": "b"},
                                      "price": "price"}})


def test_a_vin_mapped_as_a_person_identifier_is_a_warning(motorcade_project):
    assert mapping_warnings("dms", DMS) == []
    bad = {**DMS, "person": {"key": "customer_id", "identifiers": {"dms_customer_id": "customer_id", "vin": "vin"}}}
    (warning,) = mapping_warnings("dms", bad)
    assert "[sources.dms.person] identifiers" in warning and "vin" in warning and "never identifies a person" in warning
    typed = {**DMS, "event": {"name": "service", "ts": "ts",
                              "identifiers": {"car_no": {"column": "frame", "type": "vin"}}}}
    assert len(mapping_warnings("dms", typed)) == 1
    config = motorcade_project.directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[sources.dms]\ntype = "csv"\n'
                      '[sources.dms.person]\nkey = "customer_id"\nidentifiers = { vin = "vin" }\n', encoding="utf-8")
    from motorcade.cli import build_cli

    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "check"])
    assert "warning: [sources.dms.person] identifiers" in out.output, str(out.exception)
    assert "1 warning" in out.output
