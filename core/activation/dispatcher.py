"""The dispatcher: claim due sends (guard rails applied in the claim), send them in batches, record results.

Delivery is at-least-once with a stable idempotency key per send:

1. **Claim** (one write transaction): each due row passes the guard rails; a row that may go is set to
   ``claimed`` by this worker until ``now + claim_seconds``, with the chosen channel and step.
2. **Send** (no transaction open): just before each batch goes to the channel the worker renews its claims
   on that batch, drops rows it no longer owns (a slow provider never makes two workers send one row) and
   counts an attempt on the rest; the channel gets each message with the row's idempotency key.
3. **Record** (one write transaction per batch): ``sent`` / ``failed`` (retry later, exponential backoff
   with jitter) / ``dead`` -- only if the row is still claimed by this worker.

A worker killed between 2 and 3 leaves its rows ``claimed``; once the claim expires another worker sends
them again *with the same key and the same rendered bytes*, and a provider that deduplicates on the key
(the receiving server in the kill -9 test does) delivers each message once. A worker that comes back late
cannot overwrite the outcome recorded by the worker that took over (step 3 checks ``claimed_by``).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import zoneinfo
from typing import Any, Callable

from motorcade.errors import PluginError

from .channel import Channel, ChannelContext, DeliveryResult, OutboundMessage
from .feedback import write_feedback
from .guardrails import consent_allows, outside_window_until, parse_hhmm, window_end
from .people import consent_map, person_timezone
from .settings import ActivationContext
from .tokens import StoreTokenCache


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half the delay fixed, half random (never zero, never in step)."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    rng = rng or random
    return delay / 2 + rng.uniform(0, delay / 2)


class RateLimiter:
    """A token bucket per channel: the provider's requests-per-second limit, shared by this worker's threads.

    ``clock`` (seconds, monotonic) and ``sleep`` are injectable so tests pace it without waiting."""

    def __init__(self, per_second: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")  # the first request goes at once, whatever the clock's origin
        self._lock = threading.Lock()

    def wait(self, requests: int = 1, stop: threading.Event | None = None) -> None:
        """Wait for the next request's turn (returns early when ``stop`` is set)."""
        if not self.per_second:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + requests / self.per_second
        if start > now:
            if stop is not None:
                stop.wait(start - now)
            else:
                self._sleep(start - now)


class _Abandoned(Exception):
    """The batch in flight did not finish within ``stop_grace_seconds`` after a stop was asked for."""


class Dispatcher:
    """Claims and delivers due sends for one worker."""

    def __init__(self, ctx: ActivationContext):
        self.ctx = ctx
        self._channels: dict[str, Channel] = {}
        self._limiters: dict[str, RateLimiter] = {}
        # sends a guard rail stopped while claiming: (status, reason) -> count, for `run`'s summary
        self.stopped: dict[tuple[str, str], int] = {}
        self._rng = random.Random()
        self.problems: list[str] = []  # what an operator must fix (a channel whose plugin failed to load)

    # -- channels -----------------------------------------------------------------------------------

    def channel(self, name: str) -> Channel:
        if name not in self._channels:
            ctx = self.ctx
            cls = ctx.registry.channel_class(name)
            context = ChannelContext(project_dir=ctx.project_dir, token_cache=StoreTokenCache(ctx.store, clock=ctx.clock),
                                     clock=ctx.clock, store=ctx.store)
            self._channels[name] = cls(dict(ctx.channel_settings.get(name, {})), context)
            self._limiters[name] = RateLimiter(self._channels[name].capabilities.rate_limit_per_second)
        return self._channels[name]

    def close(self) -> None:
        for channel in self._channels.values():
            try:
                channel.close()
            except Exception:  # closing must not hide the run's outcome
                pass
        self._channels.clear()

    # -- guard rails (inside the claim transaction) ---------------------------------------------------

    def _decide(self, send: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
        """What to do with a due send: fields to update on the row (status and reason at least)."""
        ctx = self.ctx
        store = ctx.store
        payload = send["payload"]
        person_id = send["person_id"]
        rails = ctx.guardrails
        steps = payload.get("steps", [])
        person = store.get_person(person_id)  # follows merges: consent and caps of the surviving person
        if person is None:
            return {"status": "suppressed", "reason": "person: no longer exists"}
        person_id = person.id
        # 1. consent
        consents = consent_map(store, person_id)
        if consents.get("*") is False:
            return {"status": "suppressed", "reason": "consent: opted out of every channel"}
        channels = [s["channel"] for s in steps] or [send["channel"]]
        allowed = [c for c in channels if consent_allows(consents, c, rails.consent_mode)]
        if not allowed:
            how = "no consent recorded" if rails.consent_mode == "opt_in" else "opted out"
            return {"status": "suppressed", "reason": f"consent: {how} for {', '.join(dict.fromkeys(channels))}"}
        tz = person_timezone(person.attributes, ctx.tz)
        local = now.astimezone(tz)
        # 2. quiet hours (deferred, not dropped)
        quiet = payload.get("quiet_hours")
        if quiet:
            start, end = parse_hhmm(quiet[0], "quiet hours"), parse_hhmm(quiet[1], "quiet hours")
            until = window_end(local, start, end)
            if until is not None:
                return {"status": "deferred", "not_before": until,
                        "reason": f"quiet_hours: {quiet[0]}-{quiet[1]} {tz}, deferred to {until.isoformat()}"}
        # 3. frequency cap across campaigns (transactional sends are exempt)
        if rails.cap_count is not None and not payload.get("transactional"):
            since = now - dt.timedelta(days=rails.cap_days)
            count = store.marketing_sends_since(person_id, since, exclude_key=send["idempotency_key"])
            if count >= rails.cap_count:
                return {"status": "suppressed",
                        "reason": f"frequency_cap: {count} marketing sends in the last {rails.cap_days} days "
                                  f"(cap {rails.cap_count})"}
        # 4. holdout: recorded, not sent
        if payload.get("arm") == "holdout":
            return {"status": "holdout", "reason": f"holdout: control group ({payload.get('holdout_percent')}%)"}
        # 5. channel fallback and 6. channel limits
        skipped: list[str] = []
        for index, step in enumerate(steps):
            name = step["channel"]
            if name not in allowed:
                skipped.append(f"{name}: consent")
                continue
            if step.get("error"):
                skipped.append(f"{name}: {step['error']}")
                continue
            missing = ctx.channel_not_loaded(name)
            if missing:  # expected but not loaded: wait for the plugin to be fixed, never suppress
                if missing not in self.problems:
                    self.problems.append(missing)
                until = now + dt.timedelta(seconds=ctx.settings.backoff_base_seconds)
                return {"status": "deferred", "not_before": until, "reason": f"channel_not_loaded: {missing}"}
            try:
                channel = self.channel(name)
            except PluginError as exc:  # not installed: fall back (a bad [channels.X] setting raises instead)
                skipped.append(f"{name}: {exc.message}")
                continue
            caps = channel.capabilities
            if not caps.marketing_allowed and not payload.get("transactional"):
                skipped.append(f"{name}: service notifications only, this send is marketing")
                continue
            if caps.max_length is not None and len(step["body"]) > caps.max_length:
                skipped.append(f"{name}: body is {len(step['body'])} characters, the channel accepts {caps.max_length}")
                continue
            if caps.send_window is not None:
                window_tz = zoneinfo.ZoneInfo(caps.send_window_timezone) if getattr(
                    caps, "send_window_timezone", None) else tz
                open_at = outside_window_until(now.astimezone(window_tz), parse_hhmm(caps.send_window[0], name),
                                               parse_hhmm(caps.send_window[1], name))
                if open_at is not None:
                    return {"status": "deferred", "not_before": open_at,
                            "reason": f"send_window: {name} sends {caps.send_window[0]}-{caps.send_window[1]} "
                                      f"{window_tz}, deferred to {open_at.isoformat()}"}
            fallback = f"fallback: {send['payload']['steps'][0]['channel']} -> {name} ({'; '.join(skipped)})" \
                if index else None
            payload = {**payload, "chosen": index}
            return {"status": "claimed", "channel": name, "template": step["template"], "step": send["step"],
                    "payload": payload, "reason": fallback}
        return {"status": "suppressed", "reason": "no channel: " + "; ".join(skipped or ["no via step"])}

    def claim_quota(self, name: str) -> int:
        """How many sends of channel ``name`` one claim may take: what the channel's rate limit lets this
        worker send in half of ``claim_seconds`` (so claims do not expire while they wait in the queue)."""
        caps = self.channel(name).capabilities
        if not caps.rate_limit_per_second:
            return self.ctx.settings.claim_batch
        requests = max(1, int(caps.rate_limit_per_second * self.ctx.settings.claim_seconds / 2))
        return requests * max(1, caps.batch_size)

    def claim(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Claim due sends for this worker (guard rails applied); returns the claimed rows.

        Claiming is not an attempt: ``attempts`` rises when a batch is handed to the channel.
        """
        ctx = self.ctx
        store = ctx.store
        now = ctx.now()
        limit = limit or ctx.settings.claim_batch
        claimed = []
        quota: dict[str, int] = {}
        with store.transaction():
            for send in store.due_sends(now, limit=limit):
                decision = self._decide(send, now)
                status = decision.pop("status")
                expect = send["status"]
                if status == "claimed":
                    channel = decision["channel"]
                    if channel not in quota:
                        quota[channel] = self.claim_quota(channel)
                    if quota[channel] <= 0:
                        continue  # the next claim takes it
                    ok = store.update_send(send["idempotency_key"], now=now, expect_status=expect, status="claimed",
                                           claimed_by=ctx.worker_id,
                                           claimed_until=now + dt.timedelta(seconds=ctx.settings.claim_seconds),
                                           **decision)
                    if ok:
                        quota[channel] -= 1
                        claimed.append({**send, **decision})
                elif store.update_send(send["idempotency_key"], now=now, expect_status=expect, status=status,
                                       claimed_by=None, claimed_until=None, **decision):
                    # one line per rule, not per deferral time
                    key = (status, str(decision.get("reason") or "").split(", deferred to ")[0])
                    self.stopped[key] = self.stopped.get(key, 0) + 1
        return claimed

    # -- sending and recording ------------------------------------------------------------------------

    def _message(self, send: dict[str, Any]) -> OutboundMessage:
        step = send["payload"]["steps"][send["payload"]["chosen"]]
        return OutboundMessage(
            idempotency_key=send["idempotency_key"], person_id=send["person_id"], address=step["address"],
            template=step["template"], body=step["body"], subject=step.get("subject"),
            params=dict(step.get("params") or {}),
            metadata={"origin_kind": send["origin_kind"], "origin": send["origin"], "run_id": send["run_id"],
                      "revision": send["revision"], "step": send["step"], "store_id": step.get("store_id")},
        )

    def deliver(self, claimed: list[dict[str, Any]]) -> dict[str, int]:
        """Send claimed rows channel by channel in batches and record every result.

        When the worker is asked to stop (``ctx.stop``), no further batch starts: the claims of every
        row not yet handed to a channel are released, and the batch in flight gets ``stop_grace_seconds``
        to finish and be recorded; one still in flight then stays claimed (its claim expires, and another
        worker re-sends it with the same key).
        """
        counts = {"sent": 0, "failed": 0, "dead": 0}
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for send in claimed:
            by_channel.setdefault(send["channel"], []).append(send)
        batches = []
        for name, sends in by_channel.items():
            size = max(1, self.channel(name).capabilities.batch_size)
            batches.extend((name, sends[start:start + size]) for start in range(0, len(sends), size))
        for index, (name, group) in enumerate(batches):
            if self.ctx.stopping():
                self._release([s for _, rest in batches[index:] for s in rest])
                break
            channel = self.channel(name)
            now = self.ctx.now()
            owned = self.ctx.store.renew_claims(
                [s["idempotency_key"] for s in group], self.ctx.worker_id,
                until=now + dt.timedelta(seconds=self.ctx.settings.claim_seconds), now=now, count_attempt=True)
            # lost ones: another worker has them; the rest are attempted now
            group = [{**s, "attempts": s["attempts"] + 1} for s in group if s["idempotency_key"] in owned]
            if not group:
                continue
            messages = [self._message(s) for s in group]
            self._limiters[name].wait(1, stop=self.ctx.stop)
            try:
                results = self._send(channel, messages)
            except _Abandoned:
                self.ctx.log(f"stopping: {len(group)} sends of channel {name} still in flight after "
                             f"{self.ctx.settings.stop_grace_seconds:g} s stay claimed (re-sent with the same key "
                             "when the claim expires)")
                self._release([s for _, rest in batches[index + 1:] for s in rest])
                break
            except Exception as exc:  # a crashing plugin is a transient failure of its batch
                results = [DeliveryResult(m.idempotency_key, "transient",
                                          detail=f"channel {name} raised {type(exc).__name__}: {exc}")
                           for m in messages]
            for key, value in self.record(group, results).items():
                counts[key] += value
        return counts

    def _send(self, channel: Channel, messages: list[OutboundMessage]) -> list[DeliveryResult]:
        """``channel.send``; when the worker can be stopped, in a thread so a stop is noticed at once."""
        stop = self.ctx.stop
        if stop is None:
            return channel.send(messages)
        done = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["results"] = channel.send(messages)
            except BaseException as exc:  # noqa: BLE001 -- handed back to the dispatcher's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="motorcade-send", daemon=True).start()
        give_up = None
        while not done.wait(0.05):
            if stop.is_set():
                give_up = give_up or time.monotonic() + self.ctx.settings.stop_grace_seconds
                if time.monotonic() >= give_up:
                    raise _Abandoned()
        if "error" in box:
            raise box["error"]
        return box["results"]

    def _release(self, sends: list[dict[str, Any]]) -> None:
        if sends:
            released = self.ctx.store.release_claims([s["idempotency_key"] for s in sends], self.ctx.worker_id,
                                                     now=self.ctx.now())
            self.ctx.log(f"stopping: released {released} claimed sends that were not sent yet")

    def record(self, group: list[dict[str, Any]], results: list[DeliveryResult]) -> dict[str, int]:
        ctx = self.ctx
        store = ctx.store
        now = ctx.now()
        by_key = {r.idempotency_key: r for r in results}
        counts = {"sent": 0, "failed": 0, "dead": 0}
        feedback = []
        with store.transaction():
            for send in group:
                key = send["idempotency_key"]
                result = by_key.get(key) or DeliveryResult(key, "transient",
                                                           detail=f"channel {send['channel']} returned no result")
                owned = {"expect_status": "claimed", "expect_claimed_by": ctx.worker_id}
                fallback = send.get("reason")
                if result.status == "sent":
                    if store.update_send(key, now=now, status="sent", claimed_by=None, claimed_until=None,
                                         provider_message_id=result.provider_message_id, reason=fallback, **owned):
                        counts["sent"] += 1
                        feedback.append((send, "sent", now, {"provider_message_id": result.provider_message_id}))
                    continue
                exhausted = send["attempts"] >= ctx.settings.max_attempts
                if result.status == "permanent" or exhausted:
                    why = "permanent" if result.status == "permanent" else \
                        f"retries exhausted after {send['attempts']} attempts"
                    if store.update_send(key, now=now, status="dead", claimed_by=None, claimed_until=None,
                                         reason=f"{why}: {result.detail}"[:4000], **owned):
                        counts["dead"] += 1
                        feedback.append((send, "failed", now, {"detail": result.detail[:500]}))
                    continue
                delay = backoff_seconds(send["attempts"], base=ctx.settings.backoff_base_seconds,
                                        cap=ctx.settings.backoff_max_seconds, rng=self._rng)
                reason = f"transient (attempt {send['attempts']}): {result.detail}"
                extra: dict[str, Any] = {}
                if result.retry_after is not None:
                    cap = ctx.settings.retry_after_max_seconds
                    if result.retry_after > cap:  # a year's Retry-After must not park a send silently
                        reason += (f"; provider asked to wait {result.retry_after:.0f} s; capped at {cap:.0f} s "
                                   "(retry_after_max_seconds)")
                        extra["payload"] = {**send["payload"], "retry_after_capped": result.retry_after}
                    delay = max(delay, min(result.retry_after, cap))
                if store.update_send(key, now=now, status="failed", claimed_by=None, claimed_until=None,
                                     not_before=now + dt.timedelta(seconds=delay), reason=reason[:4000],
                                     **extra, **owned):
                    counts["failed"] += 1
            write_feedback(store, feedback)
        return counts

    def dispatch_due(self, *, max_rounds: int | None = None) -> dict[str, int]:
        """Claim and deliver until nothing is due now (or ``max_rounds`` claims were made)."""
        totals = {"claimed": 0, "sent": 0, "failed": 0, "dead": 0}
        rounds = 0
        while (max_rounds is None or rounds < max_rounds) and not self.ctx.stopping():
            rounds += 1
            claimed = self.claim()
            if not claimed:
                # nothing claimable (or every due row was stopped by a guard rail): are more rows due?
                if not self.ctx.store.due_sends(self.ctx.now(), limit=1):
                    break
                continue
            totals["claimed"] += len(claimed)
            for key, value in self.deliver(claimed).items():
                totals[key] += value
        return totals
