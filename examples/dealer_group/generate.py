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
import multiprocessing
import os
import random
import shutil
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # the gen_* helper modules live next to this file
    sys.path.insert(0, str(_HERE))

from gen_ids import format_mobile, mobile_number  # noqa: E402
from gen_people import AS_OF, WINDOW_START, Truth  # noqa: E402
from gen_reference import BRAND_ORDER, BRAND_WEIGHTS, BRANDS, CITIES, GIVEN_CHARS, SURNAMES  # noqa: E402
from gen_shard import CSV_KEYS, JSONL_KEYS, N_BUCKETS, run_shard, shard_dir  # noqa: E402
from gen_writers import CsvOut, concatenate, merge_buckets  # noqa: E402

# size -> (people, stores)
SIZES = {
    "small": (3_000, 12),
    "medium": (50_000, 60),
    "large": (300_000, 120),
    "bench": (1_000_000, 120),
}
AS_OF_TEXT = AS_OF.strftime("%Y-%m-%dT%H:%M:%S") + "+08:00"
GENERATOR_VERSION = "1"
SHARD_PEOPLE = 25_000  # people per shard (part of what determines the output, like the seed)
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
             workers: int | None = None, shard_size: int = SHARD_PEOPLE, progress=None) -> dict:
    """Write the example data set into ``out_dir``; returns file paths, counts and timing.

    ``people`` overrides the number of people of ``size`` (stores stay as the size says). People are
    simulated in shards of ``shard_size``; ``workers`` processes run them (default: one per CPU, and
    none for a single shard). The output depends on seed, size, people and shard size only, never on
    the number of workers. ``progress(done, total)`` is called after each shard if given.
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
    shutil.rmtree(spool, ignore_errors=True)
    jobs = [
        {"shard": n, "first": first, "count": min(shard_size, n_people - first), "seed": seed,
         "spool": str(spool), "stores": stores, "advisors": advisors, "columns": COLUMNS}
        for n, first in enumerate(range(0, n_people, shard_size))
    ]
    truth = Truth()
    rows = {"stores": len(stores), "advisors": len(advisors)}
    rows.update({key: 0 for key in CSV_KEYS + JSONL_KEYS})
    n_workers = min(workers or os.cpu_count() or 1, len(jobs))
    pool = None
    try:
        if n_workers <= 1:
            results = map(run_shard, jobs)
        else:
            # fork where there is one: workers inherit the loaded modules and need not re-import the
            # caller's __main__ (which spawn cannot do for code run from stdin or a REPL)
            methods = multiprocessing.get_all_start_methods()
            pool = multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(n_workers)
            results = pool.imap(run_shard, jobs)  # results in shard order, whoever finishes first
        done = 0
        for result in results:
            truth.merge(result["truth"])
            for key, n in result["rows"].items():
                rows[key] += n
            done += jobs[result["shard"]]["count"]
            if progress:
                progress(done, n_people)
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
        simulated = time.perf_counter()
        shards = [shard_dir(spool, job["shard"]) for job in jobs]
        for key in CSV_KEYS:
            concatenate(out / FILES[key], COLUMNS[key], [home / f"{key}.csv" for home in shards])
        for key in JSONL_KEYS:
            merge_buckets(out / FILES[key], [home / key for home in shards], N_BUCKETS)
    finally:
        if pool is not None:  # an error in a shard: stop the other workers
            pool.terminate()
            pool.join()
        shutil.rmtree(spool, ignore_errors=True)
    finished = time.perf_counter()

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
        "workers": n_workers,
        "rows_per_second": int(total_rows / seconds) if seconds else None,
    }


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
    parser.add_argument("--workers", type=int, default=None,
                        help="processes simulating people (default: one per CPU; output does not depend on it)")
    args = parser.parse_args(argv)

    def progress(done, total):
        print(f"  {done:,}/{total:,} people", file=sys.stderr, flush=True)

    result = generate(args.out, size=args.size, seed=args.seed, people=args.people, workers=args.workers,
                      progress=progress if args.size in ("large", "bench") else None)
    truth = result["manifest"]["truth"]
    print(f"wrote {args.out} (size={args.size}, seed={args.seed}, as of {AS_OF_TEXT})")
    for name, n in result["counts"].items():
        print(f"  {name:<22} {n:>12,} rows")
    print(f"  people {truth['persons']:,}, expected One-ID profiles {truth['expected_profiles']:,}, "
          f"owners {truth['owners']:,}, lapsed {truth['owners_lapsed_365d']:,}")
    total = sum(result["counts"].values())
    print(f"  {total:,} rows in {result['seconds']:.1f} s ({result['rows_per_second']:,} rows/s; "
          f"simulate {result['simulate_seconds']:.1f} s with {result['workers']} worker(s), "
          f"sort {result['sort_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
