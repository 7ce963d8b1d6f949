"""The simulation: one person at a time, their cars, their funnel, their service visits, their clicks.

Each simulated person writes their rows to every source file straight away (CRM, DMS, lead centre,
insurance, the native event log and the WeChat mini-program log); nothing but a few counters and a
short queue of cars for sale outlives the person, which keeps memory flat at the benchmark size.

Time is a float number of days since the start of the two-year window (local time, Asia/Shanghai);
negative values are history before the window (purchase dates), events are only emitted for
0 <= t < WINDOW_DAYS. The window ends at the fixed as-of date.
"""

from __future__ import annotations

import datetime as dt
import json
from bisect import bisect
from collections import Counter, deque
from itertools import accumulate

from gen_ids import (
    affine,
    format_mobile,
    make_vin,
    mobile_number,
    national_id,
    national_id_hash,
    uuid_text,
    wechat_id,
)
from gen_reference import (
    BRANDS,
    CAMPAIGNS,
    EMAIL_DOMAINS,
    GIVEN_CHARS,
    ID_REGION_CODES,
    INCOME_BANDS,
    INSURERS,
    JUNK_PHONES,
    LEAD_CHANNELS,
    MODELS,
    PERSONA_CONTENT,
    PERSONA_MODEL_KIND,
    PERSONA_WEIGHTS,
    PERSONAS,
    PLANT_CODES,
    SERVICE_TYPES,
    SURNAMES,
    TOUCHPOINT_CHANNELS,
    TOUCHPOINT_PAGES,
    VDS_ALPHABET,
    WECHAT_FOLLOW_SCENES,
)

AS_OF = dt.datetime(2026, 11, 20, 0, 0, 0)  # local time (Asia/Shanghai, UTC+08:00), exclusive
WINDOW_DAYS = 730
WINDOW_START = AS_OF - dt.timedelta(days=WINDOW_DAYS)  # 2024-11-20 00:00 local
RECENT_DAYS = 90  # seed 000: "in the last 90 days"
LAPSED_DAYS = 365  # seed 001: "no workshop visit for over a year"
OLD_CAR_YEARS = 5  # replacement candidates: car older than this
DIRTY_RATE = 0.012  # extra corrupted copies per clean row
DIRTY_EVENT_RATE = 0.008

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_BAD_DATES = ("2025-02-30", "2025/13/01", "0000-00-00 00:00:00", "31/31/2025", "N/A", "昨天下午", "20251")
_BAD_TS = ("2025-02-30T10:00:00+08:00", "2026-13-01 25:61", "下午3点", "not a time", "0000-00-00T00:00:00")

SEGMENT_CONTEXT_APP = {"name": "车主俱乐部小程序", "version": "3.8.1"}
SEGMENT_LIBRARY = {"name": "analytics-wechat-miniprogram", "version": "1.6.2"}


def _cum(weights):
    return list(accumulate(weights))


class Truth:
    """Counters of what was planted: the ground truth the manifest reports."""

    def __init__(self):
        self.counts = Counter()
        self.personas = Counter()
        self.events_by_name = Counter()
        self.wechat_by_type = Counter()
        self.dirty = {}  # file -> Counter of dirty kinds
        self.sources_per_person = Counter()

    def dirty_row(self, file: str, kind: str) -> None:
        self.dirty.setdefault(file, Counter())[kind] += 1

    def merge(self, other: "Truth") -> None:
        """Add another shard's counters to these."""
        self.counts.update(other.counts)
        self.personas.update(other.personas)
        self.events_by_name.update(other.events_by_name)
        self.wechat_by_type.update(other.wechat_by_type)
        self.sources_per_person.update(other.sources_per_person)
        for file, kinds in other.dirty.items():
            self.dirty.setdefault(file, Counter()).update(kinds)


class Person:
    """The state of one simulated person while their rows are written."""

    __slots__ = (
        "index", "persona", "gender", "name", "surname", "email_local", "birth_year", "birth_date",
        "store", "city_code", "phone", "family_size", "income_band", "activity", "crm_id", "in_crm",
        "email", "app_user_id", "oa_openid", "mp_openid", "unionid", "dms_id", "nid_hash", "links",
        "share_recent", "touch_recent", "intent_recent", "last_service", "owned", "sources",
        "bound_member", "events",
    )
    # (in_crm and bound_member are decided once the person's cars and journeys are planned)

    def __init__(self, index: int):
        self.index = index
        self.links = set()  # tuples of identifier labels that appeared together on one clean record
        self.share_recent = 0
        self.touch_recent = 0
        self.intent_recent = 0
        self.last_service = None
        self.owned = []  # ownership periods: dict(car, from, to)
        self.sources = set()
        self.events = 0


class Simulation:
    """Generates ``n_people`` people into the given writers. See ``generate.py`` for the files."""

    def __init__(self, rng, seed, stores, advisors, writers, truth, day_text, shard: int = 0):
        self.rng = rng
        self.seed = seed
        self.stores = stores  # list of dicts
        self.writers = writers
        self.truth = truth
        self.day_text = day_text  # day index (0..WINDOW_DAYS-1) -> "YYYY-MM-DD"
        self.sales_by_store = {}
        self.service_by_store = {}
        self.lazy_advisor = {}  # store code -> advisor dict whose own phone ends up in walk-in leads
        for adv in advisors:
            target = self.sales_by_store if adv["role"] == "sales" else self.service_by_store
            target.setdefault(adv["store"], []).append(adv)
            if adv.get("lazy"):
                self.lazy_advisor[adv["store"]] = adv
        self.stores_by_brand = {}
        for store in stores:
            self.stores_by_brand.setdefault(store["brand"], []).append(store)
        self.used_cars = deque()  # cars sold by one person, waiting for a used-car buyer
        # id counters start at a per-shard offset, so shards never issue the same id
        self.car_counter = shard * 100_000
        self.lead_counter = shard * 10_000_000
        self.event_counter = shard * 100_000_000
        self.policy_counter = shard * 10_000_000
        self._surname_cum = _cum([w for _, _, w in SURNAMES])
        self._persona_cum = _cum(PERSONA_WEIGHTS)
        self._domain_cum = _cum([w for _, w in EMAIL_DOMAINS])
        self._channel_cum = _cum([w for _, w in LEAD_CHANNELS])
        self._service_cum = _cum([w for *_, w, _lo, _hi in SERVICE_TYPES])
        self._insurer_cum = _cum([w for *_, w in INSURERS])
        self._campaigns_by_day = [
            [(code, title, channel) for code, title, channel, first, last in CAMPAIGNS if first <= day <= last]
            for day in day_text
        ]
        self._male_chars = [c for c in GIVEN_CHARS if c[2] != "f"]
        self._female_chars = [c for c in GIVEN_CHARS if c[2] != "m"]

    # ---------------------------------------------------------------- helpers
    def _pick(self, items, cum):
        return items[bisect(cum, self.rng.random() * cum[-1])]

    def _date_text(self, t: float) -> str:
        return (WINDOW_START + dt.timedelta(days=int(t // 1))).strftime("%Y-%m-%d")

    def _local_text(self, t: float, sep: str = "-") -> str:
        """Naive local date-time text, as CRM and lead-centre exports have it."""
        moment = WINDOW_START + dt.timedelta(seconds=int(t * 86400))
        return moment.strftime(f"%Y{sep}%m{sep}%d %H:%M:%S")

    def _daytime(self, day: int, store_hours: bool = False) -> float:
        if store_hours:
            return day + (9 + self.rng.random() * 9) / 24
        return day + (7.5 + self.rng.random() * 16.4) / 24

    def _ts(self, t: float) -> str:
        day = int(t)
        sec = int((t - day) * 86400)
        return f"{self.day_text[day]}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}+08:00"

    def _ts_utc(self, t: float) -> str:
        moment = WINDOW_START + dt.timedelta(seconds=t * 86400 - 8 * 3600)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def _phone_text(self, number: str) -> str:
        r = self.rng.random()
        return format_mobile(number, 0 if r < 0.55 else 1 if r < 0.7 else 2 if r < 0.82 else 3 if r < 0.9 else 4 if r < 0.96 else 5)

    def _model(self, brand: str, persona: str):
        models = MODELS[brand]
        if self.rng.random() < 0.7:
            kind = PERSONA_MODEL_KIND[persona]
            fitting = [m for m in models if m[2] == kind]
            if fitting:
                return self.rng.choice(fitting)
        return self.rng.choice(models)

    def _store_of_brand(self, brand: str, city_code: str, fallback):
        same = [s for s in self.stores_by_brand.get(brand, ()) if s["city_code"] == city_code]
        if same:
            return self.rng.choice(same)
        return self.rng.choice(self.stores_by_brand[brand]) if brand in self.stores_by_brand else fallback

    def _new_vin(self, brand: str, model_name: str, year: int) -> str:
        index = self.car_counter
        self.car_counter += 1
        wmi = self.rng.choice(BRANDS[brand][1])
        model_no = [m[0] for m in MODELS[brand]].index(model_name)
        vds = (VDS_ALPHABET[model_no * 3 % 33] + VDS_ALPHABET[(model_no * 7 + 5) % 33]
               + "".join(self.rng.choice(VDS_ALPHABET) for _ in range(3)))
        serial = affine(index % 1_000_000, 1_000_000, 7_901, self.seed % 1000)
        plant = PLANT_CODES[index // 1_000_000 % len(PLANT_CODES)]
        return make_vin(wmi, vds, year, plant, serial)

    # ---------------------------------------------------------------- events
    def _event(self, p: Person, name: str, t: float, ids: dict, props: dict) -> None:
        """Write one native event (events.jsonl) and update the truth counters."""
        if not 0 <= t < WINDOW_DAYS:
            return
        writer = self.writers["events"]
        ts = self._ts(t)
        eid = f"ev{affine(self.event_counter, 10_000_000_000, 2_654_435_761, self.seed):010d}"
        self.event_counter += 1
        obj = {"event": name, "ts": ts}
        obj.update(ids)
        obj["properties"] = props
        obj["id"] = eid
        key = ts + eid
        bucket = int(t) // 7
        writer.add(bucket, key, _DUMPS(obj))
        self.truth.events_by_name[name] += 1
        p.links.add(tuple(ids))  # identifier field names; mapped to labels in _components
        p.sources.add("events")
        p.events += 1
        self._track_recent(p, name, t)
        if self.rng.random() < DIRTY_EVENT_RATE:
            kind = self.rng.choice(("broken_json", "bad_timestamp", "missing_identifiers", "missing_event_name"))
            if kind == "broken_json":
                text = _DUMPS(obj)
                bad = text[: len(text) // 2 + self.rng.randrange(len(text) // 3)]
            elif kind == "bad_timestamp":
                bad = _DUMPS({**obj, "ts": self.rng.choice(_BAD_TS)})
            elif kind == "missing_identifiers":
                bad = _DUMPS({k: v for k, v in obj.items() if k not in _ID_LABEL})
            else:
                bad = _DUMPS({k: v for k, v in obj.items() if k != "event"})
            writer.add(bucket, key, bad)
            self.truth.dirty_row("events.jsonl", kind)

    def _track_recent(self, p: Person, name: str, t: float) -> None:
        if name == "service_visit" and (p.last_service is None or t > p.last_service):
            p.last_service = t
        if t >= WINDOW_DAYS - RECENT_DAYS:
            if name == "share":
                p.share_recent += 1
            elif name == "touchpoint_visit":
                p.touch_recent += 1
            elif name in ("lead_submit", "test_drive", "reservation"):
                p.intent_recent += 1

    def _segment(self, p: Person, kind: str, t: float, name: str | None, props: dict | None) -> None:
        """Write one mini-program call (wechat_events.jsonl) in Segment's tracking-spec shape."""
        if not 0 <= t < WINDOW_DAYS:
            return
        writer = self.writers["wechat"]
        ts = self._ts_utc(t)
        mid = uuid_text(self.rng.getrandbits(128))
        wechat_traits = {"wechat_openid": p.mp_openid}
        if p.unionid:
            wechat_traits["wechat_unionid"] = p.unionid
        obj = {"type": kind, "messageId": mid, "timestamp": ts, "anonymousId": p.mp_openid}
        labels = ["mp"]
        if p.bound_member:
            obj["userId"] = p.crm_id
            labels.append("crm")
        if kind == "identify":
            traits = {"name": p.name, "gender": "male" if p.gender == "M" else "female", **wechat_traits}
            if self.rng.random() < 0.75:  # the user authorised the mini-program to read the phone
                traits["phone"] = "+86" + p.phone
                labels.append("phone")
            obj["traits"] = traits
        else:
            obj["event"] = name
            obj["properties"] = props
        obj["context"] = {
            "app": SEGMENT_CONTEXT_APP, "library": SEGMENT_LIBRARY, "locale": "zh-CN",
            "timezone": "Asia/Shanghai", "traits": wechat_traits,
        }
        if p.unionid:
            labels.append("union")
        key = ts + mid
        bucket = int(t) // 7
        writer.add(bucket, key, _DUMPS(obj))
        self.truth.wechat_by_type[name or kind] += 1
        p.links.add(tuple(sorted(set(labels))))
        p.sources.add("wechat_events")
        if name:
            self._track_recent(p, name, t)
        if self.rng.random() < DIRTY_EVENT_RATE:
            kind_bad = self.rng.choice(("broken_json", "missing_identifiers", "bad_timestamp"))
            if kind_bad == "broken_json":
                text = _DUMPS(obj)
                bad = text[: len(text) // 2]
            elif kind_bad == "missing_identifiers":
                bad = _DUMPS({k: v for k, v in obj.items() if k not in ("userId", "anonymousId")})
            else:
                bad = _DUMPS({**obj, "timestamp": self.rng.choice(_BAD_TS)})
            writer.add(bucket, key, bad)
            self.truth.dirty_row("wechat_events.jsonl", kind_bad)

    # ---------------------------------------------------------------- the person
    def person(self, index: int) -> None:
        rng = self.rng
        p = Person(index)
        p.persona = self._pick(PERSONAS, self._persona_cum)
        self.truth.personas[p.persona] += 1
        p.gender = "M" if rng.random() < 0.62 else "F"
        surname, surname_py, _ = self._pick(SURNAMES, self._surname_cum)
        chars = self._male_chars if p.gender == "M" else self._female_chars
        given = [rng.choice(chars) for _ in range(1 if rng.random() < 0.3 else 2)]
        p.surname = surname
        p.name = surname + "".join(c for c, _, _ in given)
        p.email_local = surname_py + "".join(py for _, py, _ in given)
        young = {"技术新锐型": (1986, 2001), "家庭尊享型": (1975, 1992), "品牌中坚型": (1965, 1990)}[p.persona]
        p.birth_year = rng.randint(*young)
        p.birth_date = f"{p.birth_year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        p.store = rng.choice(self.stores)
        p.city_code = p.store["city_code"]
        p.phone = mobile_number(index, self.seed)
        p.family_size = rng.randint(3, 6) if p.persona == "家庭尊享型" else rng.randint(1, 4)
        power = rng.random() + (0.25 if p.persona == "家庭尊享型" else 0.0)
        p.income_band = INCOME_BANDS[min(3, int(power * 3.2))]
        p.activity = "high" if rng.random() < (0.34 if p.persona == "技术新锐型" else 0.22) else "low"
        p.crm_id = f"C{affine(index, 100_000_000, 19_260_817, self.seed % 99_991):08d}"
        p.dms_id = f"D{affine(index, 1_000_000_000, 998_244_353, self.seed % 99_989):09d}"
        has_app = rng.random() < {"技术新锐型": 0.75, "品牌中坚型": 0.5, "家庭尊享型": 0.45}[p.persona]
        p.app_user_id = f"U{affine(index, 10_000_000_000, 1_000_000_007, self.seed):010d}" if has_app else None
        p.oa_openid = wechat_id("oa", index, self.seed) if rng.random() < 0.55 else None
        p.mp_openid = wechat_id("mp", index, self.seed) if rng.random() < 0.3 else None
        p.unionid = wechat_id("union", index, self.seed) if (p.oa_openid or p.mp_openid) and rng.random() < 0.8 else None
        p.email = None
        if rng.random() < 0.55:
            domain = self._pick(EMAIL_DOMAINS, self._domain_cum)[0]
            local = p.email_local if rng.random() < 0.6 else f"{p.email_local}{rng.randint(1, 999)}"
            if domain == "qq.com" and rng.random() < 0.5:
                local = str(rng.randint(10_000_000, 2_999_999_999))
            p.email = f"{local}@{domain}"
        p.nid_hash = None

        # ---- cars owned before the window (or bought used), possibly sold and replaced
        is_owner = rng.random() < 0.5
        lapse_day = WINDOW_DAYS - rng.uniform(LAPSED_DAYS + 15, 1000) if rng.random() < 0.3 else None
        intent_journeys = []  # (lead day, brand, replacement?)
        if is_owner:
            self._initial_cars(p, intent_journeys)
        # prospects: intent; owners of old cars: replacement intent
        if not is_owner:
            r = rng.random()
            if r < 0.36:
                current = rng.random() < 0.4  # journey still running at the as-of date
                t_lead = rng.uniform(WINDOW_DAYS - 80, WINDOW_DAYS - 2) if current else rng.uniform(20, WINDOW_DAYS - 80)
                intent_journeys.append((t_lead, p.store["brand"], False, True))
            elif r < 0.5:  # a low-intent lead: details left on a portal, nothing after
                intent_journeys.append((rng.uniform(0, WINDOW_DAYS), p.store["brand"], False, False))
        else:
            oldest = min((o["from"] for o in p.owned if o["to"] is None), default=None)
            if oldest is not None and WINDOW_DAYS - oldest > OLD_CAR_YEARS * 365 and rng.random() < 0.3:
                t_lead = rng.uniform(WINDOW_DAYS - 200, WINDOW_DAYS - 2)
                intent_journeys.append((t_lead, p.store["brand"], True, True))

        p.in_crm = rng.random() < (0.93 if p.owned else 0.7 if intent_journeys else 0.35)
        p.bound_member = bool(p.mp_openid) and p.in_crm and rng.random() < 0.45

        bursts = []
        for t_lead, brand, replacement, serious in intent_journeys:
            bursts.append((t_lead - 60, t_lead + 30))
            self._journey(p, t_lead, brand, replacement, serious)

        # ---- service visits for each ownership period
        for own in p.owned:
            self._service_visits(p, own, lapse_day)

        # ---- digital behaviour, WeChat
        self._digital(p, bursts, is_owner or bool(p.owned))
        self._wechat(p)

        # ---- source records
        if not (p.in_crm or p.owned or p.sources):
            p.in_crm = True  # everybody is known to at least one system
        if p.in_crm:
            self._crm_row(p)
        for own in p.owned:
            self._dms_row(p, own)
            if rng.random() < 0.65:
                self._insurance_rows(p, own)

        self._finish_truth(p)

    # ---------------------------------------------------------------- cars
    def _initial_cars(self, p: Person, intent_journeys: list) -> None:
        rng = self.rng
        if self.used_cars and rng.random() < 0.1:
            car = self.used_cars.popleft()
            start = car["sold"] + rng.uniform(7, 60)
            if start < WINDOW_DAYS - 1:
                p.owned.append({"car": car, "from": start, "to": None, "used": True})
                self.truth.counts["cars_resold"] += 1
                return
            self.used_cars.appendleft(car)
        n_cars = 2 if rng.random() < 0.1 else 1
        for _ in range(n_cars):
            age_days = rng.triangular(0.1, 10.0, 2.0) * 365
            bought = WINDOW_DAYS - age_days
            brand = p.store["brand"] if rng.random() < 0.85 else rng.choice(list(self.stores_by_brand))
            car = self._car(p, brand, bought)
            own = {"car": car, "from": bought, "to": None, "used": False}
            p.owned.append(own)
            if age_days > 4 * 365 and rng.random() < 0.15:  # sold inside the window, replaced by a new car
                sold = rng.uniform(max(bought + 3 * 365, 30), WINDOW_DAYS - 40)
                own["to"] = sold
                car["sold"] = sold
                self.used_cars.append(car)
                new_brand = brand if rng.random() < 0.8 else rng.choice(list(self.stores_by_brand))
                intent_journeys.append((sold - rng.uniform(40, 90), new_brand, True, "replace"))

    def _car(self, p: Person, brand: str, bought: float, model=None) -> dict:
        model = model or self._model(brand, p.persona)
        year = (WINDOW_START + dt.timedelta(days=bought)).year + (1 if self.rng.random() < 0.2 else 0)
        store = p.store if p.store["brand"] == brand else self._store_of_brand(brand, p.city_code, p.store)
        service = self.service_by_store.get(store["code"]) or [{"code": ""}]
        return {
            "vin": self._new_vin(brand, model[0], year), "brand": brand, "model": model[0], "year": year,
            "bought": bought, "store": store, "advisor": self.rng.choice(service)["code"], "sold": None,
        }

    # ---------------------------------------------------------------- funnel
    def _journey(self, p: Person, t_lead: float, brand: str, replacement: bool, serious) -> None:
        """Configurator views -> lead -> test drive -> reservation -> order (-> delivery)."""
        rng = self.rng
        model = self._model(brand, p.persona)
        store = p.store if p.store["brand"] == brand else self._store_of_brand(brand, p.city_code, p.store)
        force_order = serious == "replace"
        # intent rises: configurator views cluster in the weeks before the lead
        for _ in range(rng.randint(2, 9) if serious else rng.randint(0, 2)):
            t = t_lead - 60 * rng.random() ** 2
            self._configurator(p, self._daytime(int(t)), brand, model[0] if rng.random() < 0.7 else None)
        self._lead(p, self._daytime(int(t_lead)), brand, model[0], store)
        if not serious:
            return
        t = t_lead + rng.uniform(2, 20)
        if not (force_order or rng.random() < 0.8):
            return
        self._store_event(p, "test_drive", self._daytime(int(t), True),
                          {"store": store["code"], "brand": brand, "model": model[0]})
        t += rng.uniform(3, 25)
        if not (force_order or rng.random() < 0.55):
            return
        deposit = rng.choice((5_000, 10_000, 20_000, 50_000))
        self._store_event(p, "reservation", self._daytime(int(t), True),
                          {"store": store["code"], "brand": brand, "model": model[0], "deposit": deposit})
        t += rng.uniform(5, 30)
        if not (force_order or rng.random() < 0.7):
            return
        amount = int(model[1] * rng.uniform(0.88, 1.02) / 1000) * 1000
        t_order = self._daytime(int(t), True)
        delivered = t_order + rng.uniform(15, 60)
        props = {"store": store["code"], "brand": brand, "model": model[0], "amount": amount, "currency": "CNY"}
        if t_order >= WINDOW_DAYS:
            return
        if t_order >= 0:
            self.truth.counts["orders"] += 1
        if delivered < WINDOW_DAYS:
            car = self._car(p, brand, delivered, model)
            car["store"] = store
            props["vin"] = car["vin"]
            props["delivered_on"] = (WINDOW_START + dt.timedelta(days=int(delivered))).strftime("%Y-%m-%d")
            p.owned.append({"car": car, "from": delivered, "to": None, "used": False})
            if t_order >= 0:
                self.truth.counts["orders_delivered"] += 1
                if replacement:
                    self.truth.counts["replacement_orders_delivered"] += 1
        self._store_event(p, "order", t_order, props)

    def _lead(self, p: Person, t: float, brand: str, model: str, store: dict) -> None:
        rng = self.rng
        channel = self._pick(LEAD_CHANNELS, self._channel_cum)[0]
        lead_id = f"L{affine(self.lead_counter, 10_000_000_000, 3_141_592_653, self.seed):010d}"
        self.lead_counter += 1
        name = p.name if rng.random() < 0.7 else p.surname + ("先生" if p.gender == "M" else "女士")
        number, kind = p.phone, "real"
        lazy = self.lazy_advisor.get(store["code"])
        if channel == "dealer_walk_in" and lazy and rng.random() < 0.6:
            number, kind = lazy["phone"], "advisor"  # the salesperson typed their own phone
        elif channel in ("autohome", "official_site") and rng.random() < 0.05:
            number, kind = rng.choice(JUNK_PHONES), "junk"
        elif rng.random() < 0.01:
            number, kind = "", "empty"
        mobile = self._phone_text(number) if number else ""
        created = self._local_text(t, "/")[:16]  # the lead centre exports minutes only
        row = [lead_id, mobile, name, brand, model, channel, store["code"], created]
        out = self.writers["leads"]
        out.write(row)
        p.sources.add("leads")
        labels = [f"lead:{lead_id}"]
        if kind == "real":
            labels.append("phone")
        else:
            self.truth.counts[f"leads_with_{kind}_phone"] += 1
        p.links.add(tuple(labels))
        if rng.random() < DIRTY_RATE:
            bad = list(row)
            which = rng.choice(("missing_key", "bad_date"))
            if which == "missing_key":
                bad[0] = ""
            else:
                bad[7] = rng.choice(_BAD_DATES)
            out.write(bad)
            self.truth.dirty_row("leads.csv", which)
        if kind == "real" and 0 <= t < WINDOW_DAYS:
            ids = {"phone": self._phone_text(p.phone)}
            if channel == "app" and p.app_user_id:
                ids["app_user_id"] = p.app_user_id
            self._event(p, "lead_submit", t, ids, {"lead_id": lead_id, "brand": brand, "model": model,
                                                    "channel": channel, "store": store["code"]})

    def _store_event(self, p: Person, name: str, t: float, props: dict) -> None:
        ids = {"phone": self._phone_text(p.phone)}
        if p.in_crm and self.rng.random() < 0.4:
            ids["crm_id"] = p.crm_id
        self._event(p, name, t, ids, props)

    def _configurator(self, p: Person, t: float, brand: str, model: str | None) -> None:
        if model is None:
            model = self._model(brand, p.persona)[0]
        props = {"brand": brand, "model": model, "trim": self.rng.choice(("标准版", "豪华版", "运动版", "旗舰版"))}
        if p.mp_openid and self.rng.random() < 0.35:
            self._segment_track(p, t, "configurator_view", props)
        elif p.app_user_id and self.rng.random() < 0.7:
            self._event(p, "configurator_view", t, {"app_user_id": p.app_user_id}, {**props, "channel": "app"})
        else:  # the official site knows logged-in members by their CRM number
            self._event(p, "configurator_view", t, self._web_ids(p), {**props, "channel": "official_site"})

    def _web_ids(self, p: Person) -> dict:
        """The official site knows logged-in members by CRM number, others by the phone they typed."""
        if p.in_crm:
            return {"crm_id": p.crm_id}
        return {"phone": self._phone_text(p.phone)}

    def _segment_track(self, p: Person, t: float, name: str, props: dict) -> None:
        self._segment(p, "track", t, name, props)

    # ---------------------------------------------------------------- after-sales
    def _service_visits(self, p: Person, own: dict, lapse_day: float | None) -> None:
        rng = self.rng
        car = own["car"]
        end = own["to"] if own["to"] is not None else WINDOW_DAYS
        if lapse_day is not None and own["to"] is None:
            end = min(end, lapse_day)
        store = car["store"] if car["store"]["brand"] == car["brand"] else p.store
        t = own["from"] + rng.uniform(150, 240)
        while t < end:
            if t >= 0:
                kind, label, _w, low, high = self._pick(SERVICE_TYPES, self._service_cum)
                amount = rng.randint(low // 100, high // 100) * 100 if high else 0
                visit_store = store if rng.random() < 0.88 else self._store_of_brand(car["brand"], p.city_code, store)
                self._store_event(p, "service_visit", self._daytime(int(t), True), {
                    "store": visit_store["code"], "vin": car["vin"], "amount": amount, "currency": "CNY",
                    "service_type": kind, "service_type_cn": label,
                    "mileage_km": int((t - car["bought"]) * rng.uniform(25, 60)),
                })
            t += rng.uniform(150, 240)

    # ---------------------------------------------------------------- digital life
    def _digital(self, p: Person, bursts: list, owner: bool) -> None:
        rng = self.rng
        base = (2.4 if p.activity == "high" else 0.35) / 30  # events per day
        start = rng.uniform(-300, WINDOW_DAYS - 30)
        # intent rises before a lead: more visits, shares and configurator views in the weeks around it
        burst = base * 2.5 + 0.5 / 30
        spans = [(max(0.0, start), WINDOW_DAYS, base)] + [(max(0.0, a), min(b, WINDOW_DAYS), burst) for a, b in bursts]
        content = PERSONA_CONTENT[p.persona]
        if p.app_user_id and start >= 0:  # registering in the app means logging in with an SMS code
            self._event(p, "app_login", self._daytime(int(start)),
                        {"app_user_id": p.app_user_id, "phone": self._phone_text(p.phone)},
                        {"os": rng.choice(("iOS", "Android", "HarmonyOS")), "first_login": True})
        for lo, hi, rate in spans:
            if hi <= lo or rate <= 0:
                continue
            t = lo + rng.expovariate(rate)
            while t < hi:
                self._digital_event(p, self._daytime(int(t)), content, owner)
                t += rng.expovariate(rate)

    def _digital_event(self, p: Person, t: float, content: str, owner: bool) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.25 and p.app_user_id:
            ids = {"app_user_id": p.app_user_id}
            if rng.random() < 0.85:
                ids["phone"] = self._phone_text(p.phone)  # SMS-code login carries the number
            elif p.unionid:
                ids["unionid"] = p.unionid  # "log in with WeChat"
            self._event(p, "app_login", t, ids, {"os": rng.choice(("iOS", "Android", "HarmonyOS"))})
        elif r < 0.55:
            topic = content if rng.random() < 0.6 else rng.choice(("offer", "service" if owner else "offer", "brand"))
            page = rng.choice(TOUCHPOINT_PAGES[topic])
            props = {"page": page, "topic": topic}
            if p.mp_openid and rng.random() < 0.4:
                self._segment_track(p, t, "touchpoint_visit", {**props, "channel": "mini_program"})
                return
            channel = rng.choice(TOUCHPOINT_CHANNELS) if p.app_user_id else rng.choice(("official_site", "wecom"))
            if channel == "app":
                ids = {"app_user_id": p.app_user_id}
            elif channel == "official_site":
                ids = self._web_ids(p)
            else:
                ids = {"phone": self._phone_text(p.phone)}
            self._event(p, "touchpoint_visit", t, ids, {**props, "channel": channel})
        elif r < 0.75:
            topic = content if rng.random() < 0.7 else rng.choice(("offer", "brand", "tech", "family"))
            props = {"content_id": f"CT{rng.randint(1000, 1299)}", "topic": topic,
                     "to": rng.choice(("wechat_friend", "moments", "weibo"))}
            if p.mp_openid and rng.random() < 0.5:
                self._segment_track(p, t, "share", props)
            elif p.app_user_id:
                self._event(p, "share", t, {"app_user_id": p.app_user_id}, props)
            elif p.unionid and p.oa_openid:
                self._event(p, "share", t, {"openid": p.oa_openid, "unionid": p.unionid}, props)
            else:
                self._event(p, "share", t, self._web_ids(p), props)
        elif r < 0.88:
            brand = p.store["brand"] if rng.random() < 0.8 else rng.choice(list(self.stores_by_brand))
            if not owner or rng.random() < 0.35:
                self._configurator(p, t, brand, None)
        else:
            running = self._campaigns_by_day[int(t)]
            if not running:
                return
            code, title, channel = rng.choice(running)
            props = {"campaign": code, "campaign_name": title, "channel": channel}
            if channel == "wechat_template" and p.oa_openid:
                self._event(p, "message_click", t, {"openid": p.oa_openid}, props)
            elif channel == "app_push" and p.app_user_id:
                self._event(p, "message_click", t, {"app_user_id": p.app_user_id}, props)
            elif channel == "sms":
                self._event(p, "message_click", t, {"phone": self._phone_text(p.phone)}, props)

    def _wechat(self, p: Person) -> None:
        rng = self.rng
        if p.oa_openid:
            t = rng.uniform(-400, WINDOW_DAYS - 1)
            ids = {"openid": p.oa_openid}
            if p.unionid:
                ids["unionid"] = p.unionid
            scene = rng.choice(WECHAT_FOLLOW_SCENES)
            props = {"account": "集团服务号", "scene": scene}
            if scene == "qrcode_store":
                props["store"] = p.store["code"]
            self._event(p, "wechat_follow", self._daytime(int(t)) if t >= 0 else t, ids, props)
            if rng.random() < 0.12:
                t2 = t + rng.uniform(5, 400)
                if t2 < WINDOW_DAYS:
                    self._event(p, "wechat_unfollow", self._daytime(int(t2)) if t2 >= 0 else t2, ids, {"account": "集团服务号"})
        if p.mp_openid:
            t = rng.uniform(0, WINDOW_DAYS - 1)
            self._segment(p, "identify", self._daytime(int(t)), None, None)

    # ---------------------------------------------------------------- source rows
    def _crm_row(self, p: Person) -> None:
        rng = self.rng
        number, kind = p.phone, "real"
        r = rng.random()
        if r < 0.012:
            number, kind = rng.choice(JUNK_PHONES), "junk"
        elif r < 0.02:
            number, kind = "", "empty"
        mobile = self._phone_text(number) if number else ""
        email = ""
        if p.email:
            email = p.email if rng.random() < 0.6 else p.email.upper() if rng.random() < 0.3 else p.email.title()
        first = min([o["from"] for o in p.owned] + [rng.uniform(-1500, WINDOW_DAYS - 1)])
        created = self._local_text(max(first - rng.uniform(0, 30), -2500))
        unionid = p.unionid if p.unionid and rng.random() < 0.8 else ""
        gender = {"M": "男", "F": "女"}[p.gender] if rng.random() < 0.95 else ""
        row = [
            p.crm_id, p.name, mobile, email, gender, p.birth_year if rng.random() < 0.85 else "",
            p.store["city"], unionid, p.family_size if rng.random() < 0.7 else "",
            p.income_band if rng.random() < 0.6 else "", created, p.store["code"],
        ]
        out = self.writers["crm"]
        out.write(row)
        p.sources.add("crm")
        labels = ["crm"]
        if kind == "real":
            labels.append("phone")
        else:
            self.truth.counts[f"crm_with_{kind}_phone"] += 1
        if email:
            labels.append("email")
        if unionid:
            labels.append("union")
        p.links.add(tuple(labels))
        if rng.random() < DIRTY_RATE:
            bad = list(row)
            which = rng.choice(("missing_key", "bad_date", "bad_date"))
            if which == "missing_key":
                bad[0] = ""
            else:
                bad[10] = rng.choice(_BAD_DATES)
            out.write(bad)
            self.truth.dirty_row("crm_customers.csv", which)

    def _dms_row(self, p: Person, own: dict) -> None:
        rng = self.rng
        car = own["car"]
        mobile = self._phone_text(p.phone)
        purchase = self._date_text(car["bought"])
        owned_from = self._date_text(own["from"])
        owned_to = self._date_text(own["to"]) if own["to"] is not None else ""
        row = [p.dms_id, p.name, mobile, car["vin"], car["brand"], car["model"], car["year"], purchase,
               car["store"]["code"], car["advisor"], owned_from, owned_to]
        out = self.writers["dms"]
        out.write(row)
        p.sources.add("dms")
        p.links.add(("dms", "phone"))
        self.truth.counts["dms_clean_rows"] += 1
        if rng.random() < DIRTY_RATE * 1.5:
            bad = list(row)
            which = rng.choice(("bad_vin_length", "bad_vin_letters", "bad_vin_check_digit", "bad_date", "missing_key"))
            vin = car["vin"]
            if which == "bad_vin_length":
                bad[3] = vin[:-1] if rng.random() < 0.5 else vin + rng.choice("0123456789")
            elif which == "bad_vin_letters":
                i = rng.choice((3, 4, 5, 11, 12))
                bad[3] = vin[:i] + rng.choice("IOQ") + vin[i + 1 :]
            elif which == "bad_vin_check_digit":
                wrong = [c for c in "0123456789X" if c != vin[8]]
                bad[3] = vin[:8] + rng.choice(wrong) + vin[9:]
            elif which == "bad_date":
                bad[7] = rng.choice(_BAD_DATES)
            else:
                bad[3] = ""
            out.write(bad)
            self.truth.dirty_row("dms_owners.csv", which)

    def _insurance_rows(self, p: Person, own: dict) -> None:
        rng = self.rng
        if p.nid_hash is None:
            region = ID_REGION_CODES[p.city_code]
            seq = rng.randrange(0, 1000, 2) + (1 if p.gender == "M" else 0)
            p.nid_hash = national_id_hash(national_id(region, p.birth_date, seq))
        car = own["car"]
        insurer_code, insurer, _ = self._pick(INSURERS, self._insurer_cum)
        end = WINDOW_START.date() + dt.timedelta(days=int(own["to"] if own["to"] is not None else WINDOW_DAYS))
        start = WINDOW_START.date() + dt.timedelta(days=int(own["from"] // 1))
        first_kept = WINDOW_START.date() - dt.timedelta(days=365)  # policies from a year before the window
        out = self.writers["insurance"]
        while start < end:
            policy_end = _add_years(start, 1) - dt.timedelta(days=1)
            if policy_end < first_kept:
                start = policy_end + dt.timedelta(days=1)
                continue
            year = start.year
            policy_no = f"{insurer_code}{year}{affine(self.policy_counter, 10_000_000_000, 1_234_567_891, self.seed):010d}"
            self.policy_counter += 1
            has_phone = rng.random() < 0.95
            mobile = self._phone_text(p.phone) if has_phone else ""
            row = [policy_no, car["vin"], mobile, p.name, p.nid_hash, insurer, start.isoformat(),
                   policy_end.isoformat()]
            out.write(row)
            p.sources.add("insurance")
            p.links.add(("nid", "phone") if has_phone else ("nid",))
            if rng.random() < DIRTY_RATE:
                bad = list(row)
                which = rng.choice(("bad_vin_check_digit", "bad_date"))
                if which == "bad_date":
                    bad[6] = rng.choice(_BAD_DATES)
                else:
                    wrong = [c for c in "0123456789X" if c != car["vin"][8]]
                    bad[1] = car["vin"][:8] + rng.choice(wrong) + car["vin"][9:]
                out.write(bad)
                self.truth.dirty_row("insurance.csv", which)
            start = policy_end + dt.timedelta(days=1)

    # ---------------------------------------------------------------- ground truth
    def _finish_truth(self, p: Person) -> None:
        c = self.truth.counts
        c["persons"] += 1
        c["expected_profiles"] += _components(p.links)
        self.truth.sources_per_person[len(p.sources)] += 1
        for source in p.sources:
            c[f"persons_in_{source}"] += 1
        current = [o for o in p.owned if o["to"] is None]
        if current:
            c["owners"] += 1
            if any(WINDOW_DAYS - o["car"]["bought"] > OLD_CAR_YEARS * 365 for o in current):
                c["owners_with_car_older_than_5y"] += 1
            if any(WINDOW_DAYS - o["from"] > LAPSED_DAYS for o in current) and (
                p.last_service is None or WINDOW_DAYS - p.last_service > LAPSED_DAYS
            ):
                c["owners_lapsed_365d"] += 1
        else:
            c["prospects"] += 1
        c["cars_owned"] += len(p.owned)
        if p.share_recent >= 3 and p.touch_recent >= 1 and p.intent_recent >= 1:
            c["high_intent_high_activity_behaviour"] += 1
        if p.unionid:
            c["persons_with_unionid"] += 1
        if p.app_user_id:
            c["persons_with_app"] += 1


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


_ID_LABEL = {"phone": "phone", "crm_id": "crm", "app_user_id": "app", "openid": "oa", "unionid": "union"}


def _components(links: set) -> int:
    """How many profiles a perfect One-ID makes of one person's records (connected components)."""
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for labels in links:
        if not labels:
            continue
        labels = [_ID_LABEL.get(label, label) for label in labels]
        root = find(labels[0])
        for other in labels[1:]:
            parent[find(other)] = root
    return len({find(x) for x in parent})
