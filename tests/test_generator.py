"""The example dealer-group generator: determinism, valid VINs, honest manifest, overlaps, time order."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib.util
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "examples" / "dealer_group" / "generate.py"


def _load_generator():
    spec = importlib.util.spec_from_file_location("dealer_group_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
import gen_ids  # noqa: E402  (made importable by loading the generator)

AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.timezone(dt.timedelta(hours=8)))
WINDOW_START = AS_OF - dt.timedelta(days=730)
ID_FIELDS = ("phone", "crm_id", "app_user_id", "openid", "unionid")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("dealer_small")
    result = gen.generate(out, size="small", seed=42)
    return out, result


def _csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


def _date_ok(text: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(text, fmt)
        return True
    except ValueError:
        return False


def _events(path: Path):
    """(line, parsed or None) for every line."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                yield line, json.loads(line)
            except json.JSONDecodeError:
                yield line, None


def _ts(text) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, TypeError, AttributeError):
        return None
    return value if value.tzinfo else None


# ------------------------------------------------------------------ VINs


def test_vin_check_digit_matches_a_known_vin():
    # the worked example of 49 CFR 565 / ISO 3779 check digits: check character "X"
    assert gen_ids.vin_check_digit("1M8GDM9AXKP042788") == "X"
    assert gen_ids.vin_is_valid("1M8GDM9AXKP042788")
    assert not gen_ids.vin_is_valid("1M8GDM9A1KP042788")
    assert not gen_ids.vin_is_valid("1M8GDM9AXKP04278")  # 16 characters
    assert not gen_ids.vin_is_valid("1M8GDM9AXKO042788")  # O is never used


_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


@settings(max_examples=200, deadline=None)
@given(
    wmi=st.text(_VIN_CHARS, min_size=3, max_size=3),
    vds=st.text(_VIN_CHARS, min_size=5, max_size=5),
    year=st.integers(1981, 2039),
    plant=st.sampled_from(_VIN_CHARS),
    serial=st.integers(0, 999_999),
    position=st.sampled_from([i for i in range(17) if i != 8]),
    replacement=st.sampled_from(_VIN_CHARS),
)
def test_made_vins_are_valid_and_a_changed_character_is_caught(wmi, vds, year, plant, serial, position, replacement):
    vin = gen_ids.make_vin(wmi, vds, year, plant, serial)
    assert len(vin) == 17 and gen_ids.vin_is_valid(vin)
    changed = vin[:position] + replacement + vin[position + 1 :]
    same_value = gen_ids.VIN_TRANSLITERATION[replacement] == gen_ids.VIN_TRANSLITERATION[vin[position]]
    # every weight except position 9's is 2..10 and 11 is prime: a different value always shows
    assert gen_ids.vin_is_valid(changed) == same_value


def test_vins_valid_except_the_planted_bad_ones(small):
    out, result = small
    dirty = result["manifest"]["dirty_rows"]
    dms = _csv(out / "dms_owners.csv")
    invalid = Counter()
    for row in dms:
        vin = row["vin"]
        if vin == "":
            invalid["missing_key"] += 1
        elif len(vin) != 17:
            invalid["bad_vin_length"] += 1
        elif set(vin) & set("IOQ"):
            invalid["bad_vin_letters"] += 1
        elif not gen_ids.vin_is_valid(vin):
            invalid["bad_vin_check_digit"] += 1
    planted = dirty["dms_owners.csv"]
    for kind in ("missing_key", "bad_vin_length", "bad_vin_letters", "bad_vin_check_digit"):
        assert invalid[kind] == planted.get(kind, 0), kind
    assert sum(invalid.values()) > 0

    bad_insurance = sum(1 for row in _csv(out / "insurance.csv") if not gen_ids.vin_is_valid(row["vin"]))
    assert bad_insurance == dirty["insurance.csv"].get("bad_vin_check_digit", 0)

    for _line, event in _events(out / "events.jsonl"):
        if event and "vin" in event.get("properties", {}):
            assert gen_ids.vin_is_valid(event["properties"]["vin"])
    assert len({row["vin"] for row in dms if gen_ids.vin_is_valid(row["vin"])}) == result["manifest"]["truth"]["cars"]


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    out, result = small
    again = gen.generate(tmp_path / "again", size="small", seed=42)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    assert "manifest.json" in names and ".spool" not in names
    for name in names:
        a = hashlib.sha256((out / name).read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / "again" / name).read_bytes()).hexdigest()
        assert a == b, name
    assert again["counts"] == result["counts"]


def test_output_does_not_depend_on_the_process(tmp_path):
    """Separate interpreters with different string-hash seeds write the same bytes."""
    import os
    import subprocess

    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, str(GENERATOR), "--size", "small", "--people", "300", "--out",
                        str(tmp_path / hash_seed)], check=True, env=env, capture_output=True)
    for path in sorted((tmp_path / "1").iterdir()):
        assert path.read_bytes() == (tmp_path / "2" / path.name).read_bytes(), path.name


def test_output_does_not_depend_on_the_number_of_workers(tmp_path):
    one = gen.generate(tmp_path / "one", size="small", seed=5, people=1200, shard_size=400, workers=1)
    two = gen.generate(tmp_path / "two", size="small", seed=5, people=1200, shard_size=400, workers=2)
    assert one["workers"] == 1 and two["workers"] == 2
    for path in sorted((tmp_path / "one").iterdir()):
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes(), path.name
    # three shards really ran: every shard's people are in the data, ids never collide
    crm = _csv(tmp_path / "one" / "crm_customers.csv")
    keys = [row["customer_no"] for row in crm if row["customer_no"]]
    assert one["manifest"]["truth"]["persons"] == 1200
    assert len(keys) == len(set(keys)) + one["manifest"]["dirty_rows"]["crm_customers.csv"].get("bad_date", 0)
    event_ids = [e["id"] for _l, e in _events(tmp_path / "one" / "events.jsonl")
                 if e and "event" in e and _ts(e["ts"]) and any(e.get(k) for k in ID_FIELDS)]
    assert len(event_ids) == len(set(event_ids))
    vins = {row["vin"] for row in _csv(tmp_path / "one" / "dms_owners.csv") if gen_ids.vin_is_valid(row["vin"])}
    assert len(vins) == one["manifest"]["truth"]["cars"]


def test_another_seed_gives_other_data(tmp_path):
    gen.generate(tmp_path / "a", size="small", seed=1, people=300)
    gen.generate(tmp_path / "b", size="small", seed=2, people=300)
    assert (tmp_path / "a" / "crm_customers.csv").read_bytes() != (tmp_path / "b" / "crm_customers.csv").read_bytes()
    assert (tmp_path / "a" / "events.jsonl").read_bytes() != (tmp_path / "b" / "events.jsonl").read_bytes()


# ------------------------------------------------------------------ manifest honesty


def test_row_counts_match_the_manifest(small):
    out, result = small
    files = result["manifest"]["files"]
    for name, info in files.items():
        path = out / name
        if name.endswith(".csv"):
            n = len(_csv(path))
        else:
            n = sum(1 for _ in open(path, encoding="utf-8"))
        assert n == info["rows"] == result["counts"][name], name
        assert info["clean_rows"] == info["rows"] - info["dirty_rows"]
    assert result["manifest"]["as_of"] == "2026-11-20T00:00:00+08:00"
    assert result["manifest"]["seed"] == 42
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8")) == result["manifest"]


def test_dirty_event_lines_match_the_manifest(small):
    out, result = small
    manifest = result["manifest"]
    kinds = Counter()
    clean = Counter()
    for line, event in _events(out / "events.jsonl"):
        if event is None:
            kinds["broken_json"] += 1
        elif "event" not in event:
            kinds["missing_event_name"] += 1
        elif _ts(event["ts"]) is None:
            kinds["bad_timestamp"] += 1
        elif not any(event.get(k) for k in ID_FIELDS):
            kinds["missing_identifiers"] += 1
        else:
            clean[event["event"]] += 1
    assert dict(kinds) == manifest["dirty_rows"]["events.jsonl"]
    assert dict(clean) == manifest["events_by_name"]
    assert len(clean) == 12  # the twelve behaviour events the issue lists

    kinds = Counter()
    for line, call in _events(out / "wechat_events.jsonl"):
        if call is None:
            kinds["broken_json"] += 1
        elif not (call.get("userId") or call.get("anonymousId")):
            kinds["missing_identifiers"] += 1
        elif _ts(call["timestamp"]) is None:
            kinds["bad_timestamp"] += 1
        else:
            assert call["type"] in ("identify", "track") and call["messageId"]
            assert call["context"]["traits"]["wechat_openid"] == call["anonymousId"]
    assert dict(kinds) == manifest["dirty_rows"]["wechat_events.jsonl"]


def test_dirty_csv_rows_match_the_manifest(small):
    out, result = small
    dirty = result["manifest"]["dirty_rows"]
    crm = Counter()
    for row in _csv(out / "crm_customers.csv"):
        if not row["customer_no"]:
            crm["missing_key"] += 1
        elif not _date_ok(row["created_at"], "%Y-%m-%d %H:%M:%S"):
            crm["bad_date"] += 1
    assert dict(crm) == dirty["crm_customers.csv"]
    leads = Counter()
    for row in _csv(out / "leads.csv"):
        if not row["lead_id"]:
            leads["missing_key"] += 1
        elif not _date_ok(row["created_at"], "%Y/%m/%d %H:%M"):
            leads["bad_date"] += 1
    assert dict(leads) == dirty["leads.csv"]
    dms_dates = sum(1 for row in _csv(out / "dms_owners.csv") if not _date_ok(row["purchase_date"], "%Y-%m-%d"))
    assert dms_dates == dirty["dms_owners.csv"].get("bad_date", 0)
    ins_dates = sum(1 for row in _csv(out / "insurance.csv") if not _date_ok(row["policy_start"], "%Y-%m-%d"))
    assert ins_dates == dirty["insurance.csv"].get("bad_date", 0)
    total_rows = sum(info["rows"] for info in result["manifest"]["files"].values())
    total_dirty = sum(info["dirty_rows"] for info in result["manifest"]["files"].values())
    assert 0.003 < total_dirty / total_rows < 0.03  # "about 1-2 %", so the quarantine has something to show


# ------------------------------------------------------------------ identities


def test_the_same_people_appear_in_several_sources_with_shared_identifiers(small):
    out, result = small
    crm = _csv(out / "crm_customers.csv")
    dms = _csv(out / "dms_owners.csv")
    leads = _csv(out / "leads.csv")
    insurance = _csv(out / "insurance.csv")
    phones = defaultdict(set)
    for source, rows in (("crm", crm), ("dms", dms), ("leads", leads), ("insurance", insurance)):
        for row in rows:
            if row["mobile"]:
                phones[_digits(row["mobile"])].add(source)
    for _line, event in _events(out / "events.jsonl"):
        if event and event.get("phone"):
            phones[_digits(event["phone"])].add("events")
    people = result["manifest"]["truth"]["persons"]
    in_three = sum(1 for sources in phones.values() if len(sources) >= 3)
    assert in_three > people * 0.2
    # the same number typed differently by different systems
    assert {"crm", "dms", "events"} <= set().union(*phones.values())
    formats = {re.sub(r"\d", "9", row["mobile"]) for row in crm if row["mobile"]}
    assert {"99999999999", "999 9999 9999", "+99 99999999999"} <= formats
    assert any(row["email"] != row["email"].lower() for row in crm if row["email"])

    unionids_crm = {row["wechat_unionid"] for row in crm if row["wechat_unionid"]}
    unionids_events = {e["unionid"] for _l, e in _events(out / "events.jsonl") if e and e.get("unionid")}
    unionids_wechat = {
        c["context"]["traits"].get("wechat_unionid") for _l, c in _events(out / "wechat_events.jsonl")
        if c and c.get("context")
    } - {None}
    assert len(unionids_crm & unionids_events) > 50
    assert len(unionids_crm & unionids_wechat) > 10
    assert result["manifest"]["truth"]["persons_in_2_or_more_sources"] > people * 0.6

    vins_dms = {row["vin"] for row in dms}
    vins_ins = {row["vin"] for row in insurance}
    vins_service = {e["properties"]["vin"] for _l, e in _events(out / "events.jsonl")
                    if e and e.get("event") == "service_visit"}
    assert len(vins_dms & vins_ins) > 0.4 * len(vins_dms) and len(vins_service & vins_dms) > 0.4 * len(vins_dms)


def test_resold_cars_have_a_second_owner_row(small):
    out, result = small
    by_vin = defaultdict(list)
    for row in _csv(out / "dms_owners.csv"):
        if gen_ids.vin_is_valid(row["vin"]) and _date_ok(row["purchase_date"], "%Y-%m-%d"):
            by_vin[row["vin"]].append(row)
    resold = [rows for rows in by_vin.values() if len({r["dms_customer_id"] for r in rows}) == 2]
    assert len(resold) == result["manifest"]["truth"]["cars_resold"] > 0
    for rows in resold:
        first, second = sorted(rows, key=lambda r: r["owned_from"])
        assert first["owned_to"] and first["owned_to"] <= second["owned_from"] and not second["owned_to"]


def test_identity_traps_are_planted(small):
    out, result = small
    truth = result["manifest"]["truth"]
    leads = [row for row in _csv(out / "leads.csv")  # clean rows only: dirty copies repeat a phone
             if row["lead_id"] and _date_ok(row["created_at"], "%Y/%m/%d %H:%M")]
    advisor_phones = {_digits(a["work_phone"]) for a in _csv(out / "advisors.csv")}
    per_phone = Counter(_digits(row["mobile"]) for row in leads if row["mobile"])
    typed_by_advisors = {phone: n for phone, n in per_phone.items() if phone in advisor_phones}
    assert sum(typed_by_advisors.values()) == truth["leads_with_advisor_phone"]
    assert max(typed_by_advisors.values()) >= 5  # one salesperson's phone on many leads
    junk = {"13800138000", "11111111111", "13888888888", "12345678901", "00000000000"}
    assert sum(n for phone, n in per_phone.items() if phone in junk) == truth["leads_with_junk_phone"] > 0
    assert sum(1 for row in leads if row["mobile"] == "") == truth["leads_with_empty_phone"]
    # a real customer's phone never collides with an advisor's or a junk number
    customer_phones = {_digits(row["mobile"]) for row in _csv(out / "dms_owners.csv")}
    assert not customer_phones & (advisor_phones | junk)
    assert truth["expected_profiles"] > truth["persons"]  # some records cannot be stitched by anyone


# ------------------------------------------------------------------ time and behaviour


def test_events_are_in_time_order_inside_the_window(small):
    out, _result = small
    for name, field in (("events.jsonl", "ts"), ("wechat_events.jsonl", "timestamp")):
        previous = None
        for _line, event in _events(out / name):
            when = _ts(event.get(field)) if event else None
            if when is None:
                continue
            assert WINDOW_START <= when < AS_OF, (name, event)
            if previous is not None:
                assert when >= previous, (name, event)
            previous = when
    ids = [e["id"] for _l, e in _events(out / "events.jsonl") if e and "event" in e and _ts(e["ts"])
           and any(e.get(k) for k in ID_FIELDS)]
    assert len(ids) == len(set(ids))
    for _line, event in _events(out / "events.jsonl"):
        if event and isinstance(event.get("ts"), str) and _ts(event["ts"]):
            assert event["ts"].endswith("+08:00")


def test_behaviour_has_structure(small):
    out, result = small
    truth = result["manifest"]["truth"]
    visits = defaultdict(list)
    firsts = {}
    orders = []
    for _line, e in _events(out / "events.jsonl"):
        if not e or "event" not in e or _ts(e.get("ts")) is None or not any(e.get(k) for k in ID_FIELDS):
            continue
        when = _ts(e["ts"])
        phone = _digits(e["phone"]) if e.get("phone") else None
        if e["event"] == "service_visit":  # per car and owner: a resold car changes hands
            visits[e["properties"]["vin"], phone].append(when)
        if phone and e["event"] in ("lead_submit", "test_drive"):
            firsts.setdefault(phone, when)
        if phone and e["event"] == "order":
            orders.append((phone, when))
            assert 150_000 < e["properties"]["amount"] < 950_000
    # owners come back every 5-8 months (the same car and owner, consecutive visits)
    gaps = [(b - a).days for times in visits.values() for a, b in zip(times, times[1:])]
    assert gaps and all(140 <= gap <= 250 for gap in gaps)
    # intent comes before the order
    preceded = sum(1 for phone, when in orders if phone in firsts and firsts[phone] < when)
    assert preceded >= 0.7 * len(orders) and len(orders) > 50
    # the segments of the seeds are non-trivial
    assert truth["owners_lapsed_365d"] > 0.1 * truth["owners"]
    assert truth["owners_with_car_older_than_5y"] > 0.1 * truth["owners"]
    assert truth["high_intent_high_activity_behaviour"] > 20
    assert set(truth["personas"]) == {"品牌中坚型", "技术新锐型", "家庭尊享型"}


def test_cli_writes_the_files(tmp_path, capsys):
    assert gen.main(["--size", "small", "--seed", "7", "--people", "200", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "rows/s" in printed and "events.jsonl" in printed
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["people_simulated"] == 200 and manifest["truth"]["persons"] == 200
    with pytest.raises(ValueError, match="unknown size"):
        gen.generate(tmp_path, size="huge")
