"""A seeded, dealer-group shaped SQLite store for the segment benchmark.

    python -m benchmarks.generate_store --people 1000000 --events 20000000 --seed 7

writes ``benchmarks/out/store_p{people}_e{events}_s{seed}.db`` (reused when it already exists: the
same seed and size give the same rows). Rows go straight into a migrated Motorcade store with
``executemany`` — no sources, no One-ID — because the benchmark measures segment evaluation only.

Shape (after the dealer-group seeds): ~120 stores in a handful of cities, one advisor per ~10 people
per store, 40 % of people own a car, three tags on everyone (intent_level, purchase_power,
lifecycle_stage), sms/wecom consent, and twelve event names over the two years before ``AS_OF``,
written in time order. Activity is skewed (a few people do most things) and intent raises the odds
of funnel events (lead_submit, test_drive, reservation, order), so the segments are neither empty
nor everyone. Standard library only.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import random
import sqlite3
import sys
import time
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"
AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.timezone(dt.timedelta(hours=8)))
DAYS = 730
GENERATOR_VERSION = "3"  # 3: schema migration 3 (covering events index); 2: funnel events 2.4 % of events

CITIES = ("上海", "北京", "广州", "深圳", "杭州", "成都", "南京", "武汉")
BRANDS = ("BMW", "MINI", "Audi", "Mercedes")
MODELS = {"BMW": ("X1", "X3", "X5", "3系", "5系"), "MINI": ("Cooper", "Countryman"),
          "Audi": ("A4L", "A6L", "Q5L"), "Mercedes": ("C级", "E级", "GLC")}
# name -> share of all events: browsing dominates, the sales funnel is rare (a lead per ~4 people a year)
EVENT_MIX = {
    "page_view": 0.346, "article_read": 0.16, "app_login": 0.13, "message_click": 0.08, "share": 0.08,
    "configurator_view": 0.06, "service_visit": 0.09, "wechat_follow": 0.03, "lead_submit": 0.012,
    "test_drive": 0.006, "reservation": 0.003, "order": 0.003,
}
FUNNEL = {"lead_submit", "test_drive", "reservation", "order"}
INTENT_LEVELS = (("high", 0.1), ("medium", 0.3), ("low", 0.6))
PURCHASE_POWER = (("very_high", 0.05), ("high", 0.15), ("medium", 0.4), ("low", 0.4))


def store_path(people: int, events: int, seed: int) -> Path:
    return OUT_DIR / f"store_p{people}_e{events}_s{seed}_v{GENERATOR_VERSION}.db"


def _pick(rng: random.Random, table) -> str:
    x = rng.random()
    for value, share in table:
        x -= share
        if x < 0:
            return value
    return table[-1][0]


def generate(people: int = 1_000_000, events: int = 20_000_000, seed: int = 7, *, path: Path | None = None,
             log=print) -> Path:
    """Write the store (or return the cached one) and return its path."""
    from motorcade.store.sqlite import SQLiteStore

    path = path or store_path(people, events, seed)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    for leftover in (tmp, Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    store = SQLiteStore(tmp)
    conn = store.conn
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(seed)
    now_text = AS_OF.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    start_epoch = int(AS_OF.timestamp()) - DAYS * 86400

    # -- stores and advisors ----------------------------------------------------------------------
    n_stores = 120
    stores = [(f"S{i:03d}", f"{CITIES[i % len(CITIES)]}{BRANDS[i % len(BRANDS)]}店{i}", "华东集团",
               CITIES[i % len(CITIES)], BRANDS[i % len(BRANDS)]) for i in range(n_stores)]
    n_advisors = max(n_stores, people // 1000)
    advisors = [(f"A{i:05d}", f"顾问{i}", stores[i % n_stores][0], "sales", None) for i in range(n_advisors)]
    with store.transaction():
        conn.executemany("INSERT INTO stores (id, name, group_name, city, brand) VALUES (?, ?, ?, ?, ?)", stores)
        conn.executemany("INSERT INTO advisors (id, name, store_id, role, phone) VALUES (?, ?, ?, ?, ?)",
                         advisors)

    # -- people, tags, cars, relations, consents --------------------------------------------------
    intent = [""] * (people + 1)
    activity = [0.0] * (people + 1)
    batch = 50_000
    for lo in range(1, people + 1, batch):
        rows_people, rows_tags, rows_cars, rows_own, rows_rel, rows_consent = [], [], [], [], [], []
        for pid in range(lo, min(lo + batch, people + 1)):
            owner = rng.random() < 0.4
            level = _pick(rng, INTENT_LEVELS)
            intent[pid] = level
            # Pareto-ish activity: most people do little, a few do a lot.
            activity[pid] = rng.paretovariate(1.3) * (1.6 if level == "high" else 1.0)
            attributes = {"city": rng.choice(CITIES), "gender": rng.choice(("M", "F")),
                          "birth_year": rng.randint(1960, 2004), "is_owner": owner,
                          "member_level": rng.choice(("none", "silver", "gold", "platinum"))}
            rows_people.append((pid, json.dumps(attributes, ensure_ascii=False), now_text, now_text))
            rows_tags.append(("intent_level", pid, level))
            rows_tags.append(("purchase_power", pid, _pick(rng, PURCHASE_POWER)))
            rows_tags.append(("lifecycle_stage", pid, "owner" if owner else rng.choice(("lead", "prospect"))))
            store_id = stores[rng.randrange(n_stores)][0]
            if owner:
                brand = rng.choice(BRANDS)
                vin = f"LBV{pid:014d}"
                bought = (AS_OF - dt.timedelta(days=rng.randint(30, 365 * 12))).date()
                rows_cars.append((vin, brand, rng.choice(MODELS[brand]), bought.year, bought.isoformat(), store_id))
                rows_own.append((pid, vin, bought.isoformat(), None, "bench"))
                rows_rel.append((pid, "selling_store", store_id, "bench", None))
            if rng.random() < 0.5:
                rows_rel.append((pid, "sales_advisor", advisors[rng.randrange(n_advisors)][0], "bench", None))
            consent_ts = start_epoch + rng.randrange(DAYS * 86400)
            if rng.random() < 0.8:
                rows_consent.append((pid, "sms", int(rng.random() < 0.85), consent_ts, "bench"))
            if rng.random() < 0.5:
                rows_consent.append((pid, "wecom", int(rng.random() < 0.9), consent_ts, "bench"))
        with store.transaction():
            conn.executemany("INSERT INTO people (id, attributes, created_at, updated_at) VALUES (?, ?, ?, ?)",
                             rows_people)
            conn.executemany("INSERT INTO tag_values (tag, person_id, value, computed_at, calculator, "
                             f"calculator_version) VALUES (?, ?, ?, '{now_text}', 'bench', '1')", rows_tags)
            conn.executemany("INSERT INTO cars (vin, brand, model, model_year, purchase_date, store_id) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows_cars)
            conn.executemany("INSERT INTO ownerships (person_id, vin, valid_from, valid_to, source) "
                             "VALUES (?, ?, ?, ?, ?)", rows_own)
            conn.executemany("INSERT INTO person_relations (person_id, kind, target_id, source, since) "
                             "VALUES (?, ?, ?, ?, ?)", rows_rel)
            conn.executemany("INSERT INTO consents (person_id, channel, granted, ts, source) "
                             "VALUES (?, ?, ?, ?, ?)", rows_consent)
    log(f"people, tags, cars, consents: {time.perf_counter() - started:.0f}s")

    # -- events, day by day in time order ---------------------------------------------------------
    cum_all = list(itertools.accumulate(activity[1:]))
    high_ids = [pid for pid in range(1, people + 1) if intent[pid] == "high"]
    cum_high = list(itertools.accumulate(activity[pid] for pid in high_ids))
    names = list(EVENT_MIX)
    cum_names = list(itertools.accumulate(EVENT_MIX.values()))
    per_day = events // DAYS
    extra = events - per_day * DAYS
    event_id = 0
    sql = ("INSERT INTO events (id, person_id, name, ts, properties, source, dedup_key) "
           "VALUES (?, ?, ?, ?, ?, 'bench', ?)")
    with store.bulk_event_load():
        for day in range(DAYS):
            n = per_day + (1 if day < extra else 0)
            day_start = start_epoch + day * 86400
            stamps = sorted(day_start + rng.randrange(86400) for _ in range(n))
            picked = rng.choices(names, cum_weights=cum_names, k=n)
            who_all = rng.choices(range(1, people + 1), cum_weights=cum_all, k=n)
            who_high = rng.choices(high_ids, cum_weights=cum_high, k=n) if high_ids else who_all
            rows = []
            for i in range(n):
                name = picked[i]
                # Half of the funnel events go to high-intent people: intent predicts the funnel.
                pid = who_high[i] if name in FUNNEL and (i & 1) else who_all[i]
                if name == "order":
                    props = json.dumps({"amount": rng.randrange(150_000, 900_000, 1000),
                                        "model": rng.choice(MODELS["BMW"])}, ensure_ascii=False)
                elif name == "share":
                    props = '{"channel": "%s"}' % rng.choice(("wechat", "moments", "weibo"))
                elif name == "service_visit":
                    props = '{"amount": %d}' % rng.randrange(300, 20_000)
                else:
                    props = "{}"
                event_id += 1
                rows.append((event_id, pid, name, stamps[i], props, f"{event_id:010d}"))
            with store.transaction():
                conn.executemany(sql, rows)
            if day % 100 == 0:
                log(f"events: day {day}/{DAYS}, {event_id:,} rows, {time.perf_counter() - started:.0f}s")
        log(f"events written, building indexes: {time.perf_counter() - started:.0f}s")
    conn.execute("ANALYZE")
    store.close()
    tmp.rename(path)
    for leftover in (Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
        leftover.unlink(missing_ok=True)
    log(f"store ready: {path} ({time.perf_counter() - started:.0f}s)")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(generate(args.people, args.events, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
