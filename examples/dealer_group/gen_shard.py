"""One shard of people: simulated into its own CSV parts and event spools (one process per shard).

The shard's random number generator is seeded from the seed and the shard number only, so the data
do not depend on how many processes run the shards or in which order they finish.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from gen_people import WINDOW_DAYS, WINDOW_START, Simulation, Truth
from gen_writers import BucketSpool, CsvOut

CSV_KEYS = ("crm", "dms", "leads", "insurance")
JSONL_KEYS = ("events", "wechat")
N_BUCKETS = WINDOW_DAYS // 7 + 1
MAX_SHARD_PEOPLE = 100_000  # keeps each shard's car numbers inside its VIN serial range


def shard_dir(spool: Path, shard: int) -> Path:
    return spool / f"shard{shard:05d}"


def run_shard(job: dict) -> dict:
    """Simulate people ``first .. first+count-1``; returns row counts and the shard's ground truth."""
    shard, first, count = job["shard"], job["first"], job["count"]
    if count > MAX_SHARD_PEOPLE:
        raise ValueError(f"a shard holds at most {MAX_SHARD_PEOPLE:,} people, got {count:,}")
    seed = job["seed"]
    home = shard_dir(Path(job["spool"]), shard)
    home.mkdir(parents=True, exist_ok=True)
    writers = {key: CsvOut(home / f"{key}.csv", job["columns"][key], header=False) for key in CSV_KEYS}
    writers["events"] = BucketSpool(home / "events", N_BUCKETS)
    writers["wechat"] = BucketSpool(home / "wechat", N_BUCKETS)
    day_text = [(WINDOW_START.date() + dt.timedelta(days=d)).isoformat() for d in range(WINDOW_DAYS)]
    truth = Truth()
    rng = random.Random(f"motorcade-dealer-group:{seed}:shard:{shard}")
    sim = Simulation(rng, seed, job["stores"], job["advisors"], writers, truth, day_text, shard=shard)
    try:
        for index in range(first, first + count):
            sim.person(index)
    finally:
        for writer in writers.values():
            writer.close()
    rows = {key: writers[key].rows for key in CSV_KEYS}
    rows.update({key: writers[key].lines for key in JSONL_KEYS})
    return {"shard": shard, "rows": rows, "truth": truth}
