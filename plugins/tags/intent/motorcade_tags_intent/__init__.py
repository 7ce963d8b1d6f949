"""Purchase intent with time decay (``intent_score``, ``intent_level``) and ``purchase_power``.

intent_score = the sum over lead submissions, configurator views, test drives and reservations in the last
``window_days`` of ``weight × 0.5 ^ (age in days / half_life_days)``: a test drive yesterday counts almost
fully, one two half-lives ago a quarter. A person who has ordered since their latest intent signal has
converted: their score is 0 (they are an owner-to-be, not a prospect to chase). intent_level is ``high``
at or above ``levels.high``, ``medium`` at or above ``levels.medium``, else ``low``. Everyone gets a value.

purchase_power combines what a person declared with what they did (the seeds' "high purchase power"):
the income band in their attributes (``income_attribute``, mapped by ``income_bands``) and the largest
order amount they have placed (``order_amount``: >= high -> high, >= medium -> medium, else low). The
stronger signal wins; people with neither signal get no value (unknown is not "low").
"""

from __future__ import annotations

from typing import Any, Iterator

import motorcade
from motorcade.errors import ConfigError
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition

__version__ = "0.1.0"

POWER = ("low", "medium", "high")


class IntentTags(TagCalculator):
    name = "intent"
    version = "1"
    depends_on_events = ("lead_submit", "configurator_view", "test_drive", "reservation", "order")
    default_settings = {
        "window_days": 365,
        "half_life_days": 30.0,
        "weights": {"lead_submit": 3.0, "configurator_view": 1.0, "test_drive": 5.0, "reservation": 8.0},
        "reset_on_order": True,  # an order after the latest signal sets the score to 0
        "levels": {"high": 8.0, "medium": 3.0},
        "income_attribute": "income_band",
        "income_bands": {"<30万": "low", "30-50万": "medium", "50-100万": "high", ">100万": "high"},
        "order_amount": {"high": 400000, "medium": 200000},  # CNY, the `amount` of order events
    }
    produces = (
        TagDefinition("intent_score", "number", "Time-decayed purchase-intent score (>= 0)", title="购买意向分"),
        TagDefinition("intent_level", "string", "Purchase-intent level", title="购买意向等级",
                      allowed_values=("low", "medium", "high")),
        TagDefinition("purchase_power", "string", "Purchase power from income band and past order amounts",
                      title="购买能力", allowed_values=POWER),
    )

    def input_events(self, settings: dict[str, Any]) -> tuple[str, ...]:
        return (*settings["weights"], "order")

    def compute(self, context: TagContext) -> Iterator[tuple[int, str, Any]]:
        s = context.settings
        weights = s["weights"]
        half_life = float(s["half_life_days"])
        if half_life <= 0 or not weights:
            raise ConfigError("[tags.intent] half_life_days must be > 0 and weights non-empty")
        attribute = str(s["income_attribute"])
        if not attribute.replace("_", "").isalnum():
            raise ConfigError(f"[tags.intent] income_attribute {attribute!r} is not an attribute name")
        from sqlglot import exp

        from motorcade.tags.query import TagQuery

        q = TagQuery(context)  # one definition, rendered for the engine that computes the tags
        weight, wanted = q.weight_of("e.name", weights)
        q.set(now=context.as_of_epoch, since=context.as_of_epoch - int(s["window_days"]) * 86400,
              ln2_over_half_life=0.6931471805599453 / (half_life * 86400.0), order_name="order")
        decayed = exp.Mul(this=weight, expression=exp.Exp(this=exp.maybe_parse("-(:now - e.ts) * :ln2_over_half_life")))
        # One pass over the intent signals, one over orders, joined to everyone.
        signals = q.where(exp.select("e.person_id", exp.alias_(q.outer(exp.Sum(this=decayed)), "score"),
                                     exp.alias_(q.outer("max(e.ts)"), "last_signal")).from_("events AS e"),
                          wanted, "e.ts >= :since AND e.ts < :now AND e.person_id IS NOT NULL",
                          q.person_filter("e.person_id")).group_by("e.person_id")
        orders = q.where(exp.select("o.person_id", exp.alias_(q.outer("max(o.ts)"), "last_order"),
                                    exp.alias_(q.outer(exp.Max(this=q.json_number(
                                        "o.properties", "amount"))), "top_amount")).from_("events AS o"),
                         "o.name = :order_name AND o.ts < :now AND o.person_id IS NOT NULL",
                         q.person_filter("o.person_id")).group_by("o.person_id")
        tree = q.where(exp.select("p.id", "s.score", "s.last_signal", "r.last_order", "r.top_amount",
                                  q.json_text("p.attributes", attribute, "[tags.intent] income_attribute"))
                       .from_("people AS p").join("signals AS s", on="s.person_id = p.id", join_type="left")
                       .join("orders AS r", on="r.person_id = p.id", join_type="left"), q.person_filter("p.id"))
        tree = tree.with_("signals", as_=signals).with_("orders", as_=orders)
        rows = q.rows(tree)
        high, medium = float(s["levels"]["high"]), float(s["levels"]["medium"])
        bands = s["income_bands"]
        amount_high, amount_medium = float(s["order_amount"]["high"]), float(s["order_amount"]["medium"])
        for person_id, score, last_signal, last_order, top_amount, income in rows:
            score = float(score or 0.0)
            if s["reset_on_order"] and last_order is not None and last_signal is not None and last_order >= last_signal:
                score = 0.0
            score = round(score, 4)
            yield person_id, "intent_score", score
            yield person_id, "intent_level", "high" if score >= high else "medium" if score >= medium else "low"
            signals = []
            if income is not None and str(income) in bands:
                signals.append(POWER.index(bands[str(income)]))
            if top_amount is not None:
                signals.append(2 if top_amount >= amount_high else 1 if top_amount >= amount_medium else 0)
            if signals:
                yield person_id, "purchase_power", POWER[max(signals)]


@motorcade.hookimpl
def register_tag_calculators(register):
    register(IntentTags())
