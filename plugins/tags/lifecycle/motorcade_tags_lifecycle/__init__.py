"""Owner lifecycle (``lifecycle_stage``), car age and the replacement window.

Stages, decided on ``as_of``'s date in the project's time zone from ownerships and ``service_visit`` events:

* ``prospect`` (潜客): the person has never owned a car (no ownership record).
* ``churned``: the person owned cars but owns none now (sold or scrapped), or is an owner whose last
  service visit (or, never serviced, the day they got the car) is more than ``churn_after_days`` ago.
* ``new_owner``: an owner who got their newest current car within ``new_owner_days``.
* ``lapsed_owner``: an owner with no service visit for more than ``lapse_after_days`` (流失 in the seeds:
  not back for over a year), measured from the acquisition when they never came for service.
* ``owner`` (保客): every other current owner.

An ownership is current when it started on or before the date (or has no start) and has not ended.
``car_age_years`` is the age of the person's newest current car (from the car's purchase date, else the
ownership start, else 1 January of its model year), one decimal; ``replacement_window`` is true when that
age is within [replacement_min_years, replacement_max_years]. Both are set for current owners only;
``days_since_service`` for everyone who has ever had a service visit.

Ownerships carry no change time, so this calculator always runs in full (``supports_incremental``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterator

import motorcade
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition

__version__ = "0.1.0"

STAGES = ("prospect", "new_owner", "owner", "lapsed_owner", "churned")


class LifecycleTags(TagCalculator):
    name = "lifecycle"
    version = "1"
    supported_engines = ("sqlite", "postgres")  # SQLite text, rendered per engine (context.sql)
    depends_on_events = ("service_visit",)
    supports_incremental = False
    default_settings = {
        "new_owner_days": 365,
        "lapse_after_days": 365,
        "churn_after_days": 1095,
        "replacement_min_years": 3.0,
        "replacement_max_years": 6.0,
    }
    produces = (
        TagDefinition("lifecycle_stage", "string", "Customer lifecycle stage", title="生命周期阶段",
                      allowed_values=STAGES),
        TagDefinition("car_age_years", "number", "Age in years of the newest car the person owns", title="车龄"),
        TagDefinition("replacement_window", "boolean", "The newest car's age is in the replacement window",
                      title="增换购窗口期"),
        TagDefinition("days_since_service", "number", "Days since the latest service visit", title="未回厂天数"),
    )

    def compute(self, context: TagContext) -> Iterator[tuple[int, str, Any]]:
        s = context.settings
        today = context.local_today  # as_of's date in the project's time zone (as_of may come in another zone)
        people_filter, params = context.person_filter("p.id")
        params.update(today=today.isoformat(), now=context.as_of_epoch)
        # 1 January of the model year as ISO text (printf is SQLite's; lpad PostgreSQL's)
        year_start = ("printf('%04d-01-01', c.model_year)" if context.dialect == "sqlite"
                      else "lpad(CAST(c.model_year AS TEXT), 4, '0') || '-01-01'")
        sql = (
            "WITH current AS (SELECT o.person_id, "
            "coalesce(o.valid_from, c.purchase_date) AS acquired, "
            "coalesce(c.purchase_date, o.valid_from, CASE WHEN c.model_year IS NOT NULL "
            f"THEN {year_start} END) AS car_date "
            "FROM ownerships o LEFT JOIN cars c ON c.vin = o.vin "
            "WHERE (o.valid_from IS NULL OR o.valid_from <= :today) AND (o.valid_to IS NULL OR o.valid_to > :today)), "
            "owners AS (SELECT person_id, max(acquired) AS acquired, max(car_date) AS car_date, count(*) AS cars "
            "FROM current GROUP BY person_id), "
            "ever AS (SELECT DISTINCT person_id FROM ownerships), "
            "service AS (SELECT person_id, max(ts) AS last_service FROM events "
            "WHERE name = 'service_visit' AND ts < :now AND person_id IS NOT NULL GROUP BY person_id) "
            "SELECT p.id, ever.person_id IS NOT NULL, owners.cars, owners.acquired, owners.car_date, "
            "service.last_service FROM people p LEFT JOIN ever ON ever.person_id = p.id "
            "LEFT JOIN owners ON owners.person_id = p.id LEFT JOIN service ON service.person_id = p.id "
            f"WHERE 1 = 1{people_filter}"
        )
        now = context.as_of_epoch
        rows = context.store.query(context.sql(sql), params)
        for person_id, ever_owned, cars, acquired, car_date, last_service in rows:
            since_service = None if last_service is None else (now - last_service) // 86400
            if since_service is not None:
                yield person_id, "days_since_service", since_service
            if not ever_owned:
                yield person_id, "lifecycle_stage", "prospect"
                continue
            if not cars:
                yield person_id, "lifecycle_stage", "churned"
                continue
            acquired_days = None if acquired is None else (today - dt.date.fromisoformat(acquired)).days
            quiet = [d for d in (since_service, acquired_days) if d is not None]
            quiet_days = min(quiet) if quiet else None
            if acquired_days is not None and acquired_days <= int(s["new_owner_days"]):
                stage = "new_owner"
            elif quiet_days is not None and quiet_days > int(s["churn_after_days"]):
                stage = "churned"
            elif quiet_days is not None and quiet_days > int(s["lapse_after_days"]):
                stage = "lapsed_owner"
            else:
                stage = "owner"
            yield person_id, "lifecycle_stage", stage
            if car_date is not None:
                age = round((today - dt.date.fromisoformat(car_date)).days / 365.25, 1)
                yield person_id, "car_age_years", age
                yield person_id, "replacement_window", (
                    float(s["replacement_min_years"]) <= age <= float(s["replacement_max_years"]))


@motorcade.hookimpl
def register_tag_calculators(register):
    register(LifecycleTags())
