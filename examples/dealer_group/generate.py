"""Generate the example dealer group: stores, advisors, CRM/DMS/lead/insurance exports and events.

    python examples/dealer_group/generate.py --size small --seed 42 --out data/

or from Python::

    generate(out_dir, size="small", seed=42)  # -> {"files": {...}, "counts": {...}, ...}

The same seed and size give byte-identical files. The data describe two years of behaviour that end
at the fixed as-of date 2026-11-20T00:00:00+08:00; ``manifest.json`` lists the counts per file and
the planted ground truth (people, expected One-ID profiles, dirty rows by kind, segment sizes that
follow from the behaviour). The file formats are described in this folder's README.md ("Data").
Standard library only; everything is streamed, so the benchmark size needs little memory.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # the gen_* helper modules live next to this file
    sys.path.insert(0, str(_HERE))

from gen_ids import format_mobile, mobile_number  # noqa: E402
from gen_people import AS_OF, WINDOW_DAYS, WINDOW_START, Simulation, Truth  # noqa: E402
from gen_reference import BRAND_ORDER, BRAND_WEIGHTS, BRANDS, CITIES, GIVEN_CHARS, SURNAMES  # noqa: E402
from gen_writers import CsvOut, TimeSortedLines  # noqa: E402

# size -> (people, stores)
SIZES = {
    "small": (3_000, 12),
    "medium": (50_000, 60),
    "large": (300_000, 120),
    "bench": (1_000_000, 120),
}
AS_OF_TEXT = AS_OF.strftime("%Y-%m-%dT%H:%M:%S") + "+08:00"
GENERATOR_VERSION = "1"
ADVISOR_PHONE_BASE = 3_000_000_000  # advisors' phone indexes never meet customers' (< 10**9)

FILES = {
    "stores": "stores.csv",
    "advisors": "advisors.csv",
    "crm": "crm_customers.csv",
    "dms": "dms_owners.csv",
    "leads": "leads.csv",
    "insurance": "insurance.csv",
    "events": "events.jsonl",
    "wechat": "wechat_events.jsonl",
}
COLUMNS = {
    "stores": ("store_code", "store_name", "region", "city", "brand", "store_type"),
    "advisors": ("advisor_code", "name", "store_code", "role", "work_phone"),
    "crm": ("customer_no", "name", "mobile", "email", "gender", "birth_year", "city", "wechat_unionid",
            "family_size", "income_band", "created_at", "preferred_store"),
    "dms": ("dms_customer_id", "owner_name", "mobile", "vin", "brand", "model", "model_year", "purchase_date",
            "selling_store", "service_advisor", "owned_from", "owned_to"),
    "leads": ("lead_id", "mobile", "name", "intended_brand", "intended_model", "source_channel", "store_code",
              "created_at"),
    "insurance": ("policy_no", "vin", "mobile", "insured_name", "national_id_hash", "insurer", "policy_start",
                  "policy_end"),
}


def _largest_remainder(total: int, weights) -> list[int]:
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def make_stores(rng: random.Random, n_stores: int) -> list[dict]:
    """``n_stores`` stores spread over the cities by weight, brands by weight, unique names."""
    per_city = _largest_remainder(n_stores, [c[3] for c in CITIES])
    if n_stores >= len(CITIES):  # every city gets at least one store
        for i, n in enumerate(per_city):
            if n == 0:
                per_city[i] = 1
                per_city[per_city.index(max(per_city))] -= 1
    stores, names = [], set()
    for (code, city, region, _w, districts), n in zip(CITIES, per_city):
        brands = [b for b, k in zip(BRAND_ORDER, _largest_remainder(max(n, 1), BRAND_WEIGHTS)) for _ in range(k)]
        rng.shuffle(brands)
        for i in range(n):
            brand = brands[i % len(brands)]
            store_type = "城市展厅" if rng.random() < 0.15 else "4S店"
            district = districts[i % len(districts)]
            name = f"{city}{district}{BRANDS[brand][0]}{store_type}"
            suffix = 2
            while name in names:
                name = f"{city}{district}{BRANDS[brand][0]}{store_type}{suffix}号"
                suffix += 1
            names.add(name)
            stores.append({"code": f"{code}{i + 1:03d}", "name": name, "group": region, "city": city,
                           "city_code": code, "brand": brand, "type": store_type})
    return stores


def make_advisors(rng: random.Random, stores: list[dict], seed: int) -> list[dict]:
    """Sales and service advisors per store; in every sixth store one salesperson is 'lazy' (see README)."""
    advisors = []
    surname_weights = [w for _, _, w in SURNAMES]
    for n, store in enumerate(stores):
        for role, letter, low, high in (("sales", "S", 6, 10), ("service", "A", 4, 6)):
            for k in range(rng.randint(low, high)):
                surname = rng.choices(SURNAMES, weights=surname_weights)[0][0]
                name = surname + "".join(rng.choice(GIVEN_CHARS)[0] for _ in range(rng.choice((1, 2))))
                number = mobile_number(ADVISOR_PHONE_BASE + len(advisors), seed)
                advisors.append({
                    "code": f"{store['code']}-{letter}{k + 1:02d}", "name": name, "store": store["code"],
                    "role": role, "phone": number, "lazy": role == "sales" and k == 0 and n % 6 == 0,
                })
    return advisors


def generate(out_dir, size: str = "small", seed: int = 42, people: int | None = None,
             progress=None) -> dict:
    """Write the example data set into ``out_dir``; returns file paths, counts and timing.

    ``people`` overrides the number of people of ``size`` (stores stay as the size says).
    ``progress(done, total)`` is called every 50,000 people if given.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    n_people, n_stores = SIZES[size]
    if people is not None:
        n_people = people
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = random.Random(f"motorcade-dealer-group:{seed}")

    stores = make_stores(rng, n_stores)
    advisors = make_advisors(rng, stores, seed)
    writer = CsvOut(out / FILES["stores"], COLUMNS["stores"])
    for s in stores:
        writer.write([s["code"], s["name"], s["group"], s["city"], s["brand"], s["type"]])
    writer.close()
    writer = CsvOut(out / FILES["advisors"], COLUMNS["advisors"])
    for a in advisors:
        writer.write([a["code"], a["name"], a["store"], a["role"], format_mobile(a["phone"], rng.choice((0, 0, 1, 4)))])
    writer.close()

    spool = out / ".spool"
    n_buckets = WINDOW_DAYS // 7 + 1
    writers = {key: CsvOut(out / FILES[key], COLUMNS[key]) for key in ("crm", "dms", "leads", "insurance")}
    writers["events"] = TimeSortedLines(out / FILES["events"], spool, n_buckets)
    writers["wechat"] = TimeSortedLines(out / FILES["wechat"], spool, n_buckets)
    day_text = [(WINDOW_START.date() + _days(d)).isoformat() for d in range(WINDOW_DAYS)]
    truth = Truth()
    sim = Simulation(rng, seed, stores, advisors, writers, truth, day_text)
    try:
        for index in range(n_people):
            sim.person(index)
            if progress and index % 50_000 == 49_999:
                progress(index + 1, n_people)
        simulated = time.perf_counter()
        for key in ("crm", "dms", "leads", "insurance"):
            writers[key].close()
        writers["events"].finish()
        writers["wechat"].finish()
    except BaseException:
        for key in ("events", "wechat"):
            writers[key].abort()
        raise
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    finished = time.perf_counter()

    rows = {"stores": len(stores), "advisors": len(advisors)}
    rows.update({key: writers[key].rows for key in ("crm", "dms", "leads", "insurance")})
    rows.update({key: writers[key].lines for key in ("events", "wechat")})
    manifest = _manifest(size, seed, n_people, stores, advisors, rows, truth)
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    total_rows = sum(rows.values())
    seconds = finished - started
    return {
        "files": {key: out / name for key, name in FILES.items()} | {"manifest": out / "manifest.json"},
        "counts": {FILES[key]: n for key, n in rows.items()},
        "manifest": manifest,
        "seconds": round(seconds, 3),
        "simulate_seconds": round(simulated - started, 3),
        "sort_seconds": round(finished - simulated, 3),
        "rows_per_second": int(total_rows / seconds) if seconds else None,
    }


def _days(n: int):
    import datetime as dt

    return dt.timedelta(days=n)


def _manifest(size, seed, n_people, stores, advisors, rows, truth: Truth) -> dict:
    dirty = {name: dict(sorted(kinds.items())) for name, kinds in sorted(truth.dirty.items())}
    files = {}
    for key, n in rows.items():
        name = FILES[key]
        n_dirty = sum(dirty.get(name, {}).values())
        files[name] = {"rows": n, "dirty_rows": n_dirty, "clean_rows": n - n_dirty}
    c = truth.counts
    per_person = dict(sorted(truth.sources_per_person.items()))
    return {
        "generator": f"examples/dealer_group/generate.py v{GENERATOR_VERSION}",
        "size": size,
        "seed": seed,
        "people_simulated": n_people,
        "as_of": AS_OF_TEXT,
        "window_start": WINDOW_START.strftime("%Y-%m-%dT%H:%M:%S") + "+08:00",
        "time_zone": "Asia/Shanghai",
        "files": files,
        "dirty_rows": dirty,
        "events_by_name": dict(sorted(truth.events_by_name.items())),
        "wechat_events_by_name": dict(sorted(truth.wechat_by_type.items())),
        "truth": {
            "persons": c["persons"],
            "expected_profiles": c["expected_profiles"],
            "owners": c["owners"],
            "prospects": c["prospects"],
            "personas": dict(sorted(truth.personas.items())),
            "persons_by_number_of_sources": {str(k): v for k, v in per_person.items()},
            "persons_in_2_or_more_sources": sum(v for k, v in per_person.items() if k >= 2),
            "persons_in_source": {name: c[f"persons_in_{name}"] for name in
                                  ("crm", "dms", "leads", "insurance", "events", "wechat_events")},
            "persons_with_unionid": c["persons_with_unionid"],
            "persons_with_app": c["persons_with_app"],
            "stores": len(stores),
            "advisors": len(advisors),
            "lazy_advisors": sum(1 for a in advisors if a["lazy"]),
            "cars": c["cars_owned"] - c["cars_resold"],
            "cars_resold": c["cars_resold"],
            "ownerships": c["cars_owned"],
            "orders": c["orders"],
            "orders_delivered": c["orders_delivered"],
            "replacement_orders_delivered": c["replacement_orders_delivered"],
            "owners_lapsed_365d": c["owners_lapsed_365d"],
            "owners_with_car_older_than_5y": c["owners_with_car_older_than_5y"],
            "high_intent_high_activity_behaviour": c["high_intent_high_activity_behaviour"],
            "leads_with_advisor_phone": c["leads_with_advisor_phone"],
            "leads_with_junk_phone": c["leads_with_junk_phone"],
            "leads_with_empty_phone": c["leads_with_empty_phone"],
            "crm_with_junk_phone": c["crm_with_junk_phone"],
            "crm_with_empty_phone": c["crm_with_empty_phone"],
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Motorcade example dealer group data set.")
    parser.add_argument("--size", choices=tuple(SIZES), default="small", help="data set size (default: small)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument("--out", required=True, help="directory to write the files into")
    parser.add_argument("--people", type=int, default=None, help="override the number of people")
    args = parser.parse_args(argv)

    def progress(done, total):
        print(f"  {done:,}/{total:,} people", file=sys.stderr, flush=True)

    result = generate(args.out, size=args.size, seed=args.seed, people=args.people,
                      progress=progress if args.size in ("large", "bench") else None)
    truth = result["manifest"]["truth"]
    print(f"wrote {args.out} (size={args.size}, seed={args.seed}, as of {AS_OF_TEXT})")
    for name, n in result["counts"].items():
        print(f"  {name:<22} {n:>12,} rows")
    print(f"  people {truth['persons']:,}, expected One-ID profiles {truth['expected_profiles']:,}, "
          f"owners {truth['owners']:,}, lapsed {truth['owners_lapsed_365d']:,}")
    total = sum(result["counts"].values())
    print(f"  {total:,} rows in {result['seconds']:.1f} s ({result['rows_per_second']:,} rows/s; "
          f"simulate {result['simulate_seconds']:.1f} s, sort {result['sort_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
