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
        from sqlglot import exp

        from motorcade.tags.query import TagQuery

        q = TagQuery(context)  # one definition, rendered for the engine that computes the tags
        q.set(today=today.isoformat(), now=context.as_of_epoch, service_name="service_visit")
        # aliases differ from the columns they aggregate (ClickHouse resolves a column name to an alias)
        current = exp.select(
            "o.person_id", "coalesce(o.valid_from, c.purchase_date) AS acquired_on",
            exp.alias_(exp.Coalesce(this=exp.column("purchase_date", "c"), expressions=[
                exp.column("valid_from", "o"), exp.Case(ifs=[exp.If(this=exp.maybe_parse("c.model_year IS NOT NULL"),
                                                                  true=q.year_start("c.model_year"))])]), "car_on"),
        ).from_("ownerships AS o").join("cars AS c", on="c.vin = o.vin", join_type="left").where(
            "(o.valid_from IS NULL OR o.valid_from <= :today) AND (o.valid_to IS NULL OR o.valid_to > :today)")
        owners = exp.select("cur.person_id", exp.alias_(q.outer("max(cur.acquired_on)"), "newest_acquired"),
                            exp.alias_(q.outer("max(cur.car_on)"), "newest_car"),
                            exp.alias_(q.outer("count(*)"), "cars_owned")).from_("current_cars AS cur").group_by(
            "cur.person_id")
        ever = exp.select(exp.alias_(q.outer("ow.person_id"), "owner_id")).distinct().from_("ownerships AS ow")
        service = exp.select("v.person_id", exp.alias_(q.outer("max(v.ts)"), "last_service")).from_(
            "events AS v").where("v.name = :service_name AND v.ts < :now AND v.person_id IS NOT NULL").group_by(
            "v.person_id")
        tree = q.where(exp.select("p.id", "ever.owner_id IS NOT NULL", "owners.cars_owned", "owners.newest_acquired",
                                  "owners.newest_car", "service.last_service").from_("people AS p")
                       .join("ever", on="ever.owner_id = p.id", join_type="left")
                       .join("owners", on="owners.person_id = p.id", join_type="left")
                       .join("service", on="service.person_id = p.id", join_type="left"), q.person_filter("p.id"))
        for name, query in (("current_cars", current), ("owners", owners), ("ever", ever), ("service", service)):
            tree = tree.with_(name, as_=query)
        now = context.as_of_epoch
        rows = q.rows(tree)
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
