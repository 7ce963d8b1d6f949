"""CLI commands of the feedback stage (added to the root CLI by motorcade.cli): ``motorcade report ...``."""

from __future__ import annotations

import click

from ..as_of import as_of_option

from ..errors import MotorcadeError
from .attribution import MODELS as ATTRIBUTION_MODELS


def _common(fn):
    fn = click.option("--out", type=click.Path(dir_okay=False),
                      help="Write the report to this file (HTML, or JSON with --format json).")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table",
                      show_default=True, help="table = print in the terminal; html has charts.")(fn)
    fn = click.option("--store", "store_id", metavar="STORE",
                      help="Restrict to the people of one store (default: the whole group).")(fn)
    return fn


def _as_of(project, value):
    import datetime as dt

    from .common import to_epoch

    from ..as_of import parse_as_of

    if value is None:
        return None
    return dt.datetime.fromtimestamp(to_epoch(parse_as_of(value, project.timezone), project.timezone),
                                     dt.timezone.utc)


def _warn_unknown_events(project, *names: str | None) -> None:
    """A warning (stderr) with `check`'s did-you-mean hint for each event name the store has never seen: the
    report would silently count nothing for a misspelled ``--event``."""
    from motorcade.activation.feedback import OUTCOMES
    from motorcade.dsl.errors import did_you_mean

    seen = set(project.store.event_names())
    if not seen:
        return  # nothing ingested yet: every name is unknown, a hint would be noise
    known = seen | set(OUTCOMES)
    for name in names:
        if name and name not in known:
            hint = did_you_mean(name, known) or f"events in the store: {', '.join(sorted(seen)[:15])}"
            click.secho(f"warning: no event named {name!r} in the store; {hint}", fg="yellow", err=True)


def _emit(report, fmt, out):
    from .render import emit

    path = emit(report, fmt, out)
    if path:
        click.echo(f"Wrote {path}", err=True)


@click.group()
def report() -> None:
    """Reports over the store: funnels, campaign uplift, retention cohorts, churn warning, attribution, segment portraits."""


@report.command()
@click.argument("name", required=False)
@click.option("--steps", help="Ad-hoc funnel: comma-separated event names (instead of a funnel NAME from the rules).")
@click.option("--within", "within_days", type=int, help="Ad-hoc funnel: conversion window in days.")
@click.option("--by", help="Break down by a property (channel, template, campaign, store, segment...).")
@click.option("--campaign", help="Only passes that start with an event of this campaign.")
@click.option("--since", help="First step on or after this date (project time zone).")
@click.option("--until", help="First step before this date (project time zone).")
@_common
@click.pass_obj
def funnel(state, name, steps, within_days, by, campaign, since, until, store_id, fmt, out) -> None:
    """People per funnel step, conversion and median time between steps.

    NAME is a funnel declared in the rules (`funnel NAME { steps a, b, c within 14 days by channel }`);
    or give --steps for an ad-hoc funnel."""
    from .common import to_epoch
    from .funnel import FunnelSpec, compute_funnel, funnel_spec

    project = state.project
    if steps:
        names = [s.strip() for s in steps.split(",") if s.strip()]
        if len(names) < 2:
            raise MotorcadeError("--steps needs at least two event names", hint="e.g. --steps sent,clicked,service_visit")
        spec = FunnelSpec(name or "ad_hoc", names, None if within_days is None else (within_days, "days"))
        _warn_unknown_events(project, *names)
    elif name:
        spec = funnel_spec(project.rules(), name)
    else:
        raise click.UsageError("give a funnel NAME from the rules or --steps a,b,c")
    tz = project.timezone
    result = compute_funnel(project.store, spec, since=to_epoch(since, tz), until=to_epoch(until, tz),
                            campaign=campaign, store_id=store_id, by=by, tz=tz)
    _emit(result, fmt, out)


@report.command()
@click.argument("campaign")
@click.option("--event", default="service_visit", show_default=True, help="Target event that counts as conversion.")
@click.option("--days", default=30, show_default=True, help="Conversion window after the audience snapshot.")
@click.option("--run", "run_id", help="One run of the campaign (default: all its runs).")
@click.option("--ci", "method", type=click.Choice(["newcombe", "wald"]), default="newcombe", show_default=True,
              help="Interval for the difference of proportions.")
@click.option("--confidence", default=0.95, show_default=True)
@click.option("--lapsed-days", default=365, show_default=True, help="An owner is lapsed after this many days without a visit.")
@as_of_option("Treat this instant as now: later runs and conversions do not count (windows still open are "
              "reported).")
@_common
@click.pass_obj
def uplift(state, campaign, event, days, run_id, method, confidence, lapsed_days, as_of, store_id, fmt, out) -> None:
    """Uplift of CAMPAIGN against its holdout, with intervals and the lapsed-owner recall rate."""
    from .common import to_epoch
    from .uplift import compute_uplift

    project = state.project
    _warn_unknown_events(project, event)
    try:
        campaigns = tuple(project.rules().campaigns)  # for the did-you-mean hint of an unknown campaign
    except MotorcadeError:
        campaigns = ()
    result = compute_uplift(project.store, campaign, event=event, days=days, run_id=run_id, store_id=store_id,
                            lapsed_days=lapsed_days, confidence=confidence, method=method,
                            as_of=to_epoch(_as_of(project, as_of), project.timezone), tz=project.timezone,
                            campaigns=campaigns)
    _emit(result, fmt, out)


@report.command()
@click.option("--event", "return_event", default="service_visit", show_default=True,
              help="The event people come back for.")
@click.option("--cohort-event", help="Cohort by the month of this first event (e.g. purchase, sent). "
                                     "Default: the month of the first car ownership (owners' return to workshop).")
@click.option("--periods", default=12, show_default=True, help="Months after the cohort month to show.")
@as_of_option("Treat this instant as now.")
@_common
@click.pass_obj
def retention(state, return_event, cohort_event, periods, as_of, store_id, fmt, out) -> None:
    """Monthly cohorts of people doing an event again; owners' return-to-workshop curves."""
    from .retention import compute_retention

    project = state.project
    _warn_unknown_events(project, return_event, cohort_event)
    result = compute_retention(project.store, return_event=return_event, cohort_event=cohort_event, periods=periods,
                               store_id=store_id, as_of=_as_of(project, as_of), tz=project.timezone)
    _emit(result, fmt, out)


@report.command()
@click.option("--event", "service_event", default="service_visit", show_default=True, help="The service visit event.")
@click.option("--limit", default=50, show_default=True, help="Length of the ranked list.")
@click.option("--default-interval", default=180, show_default=True,
              help="Days between visits assumed when neither the owner nor their store has history.")
@as_of_option("Treat this instant as now.")
@_common
@click.pass_obj
def churn(state, service_event, limit, default_interval, as_of, store_id, fmt, out) -> None:
    """Owners past their expected service interval, ranked, per store.

    The interval comes from each owner's own visit history (else their store's or the group's)."""
    from .churn import compute_churn

    project = state.project
    _warn_unknown_events(project, service_event)
    result = compute_churn(project.store, service_event=service_event, as_of=_as_of(project, as_of),
                           store_id=store_id, limit=limit, default_interval_days=default_interval,
                           tz=project.timezone)
    _emit(result, fmt, out)


def _reports_settings(project) -> dict:
    """The ``[reports]`` table of motorcade.toml (checked by the config schema)."""
    return dict(project.config.raw.get("reports", {}) or {})


@report.command()
@click.option("--conversion", default="order", show_default=True, help="The event that counts as a conversion.")
@click.option("--within", "within_days", default=90.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Days before a conversion in which touches count.")
@click.option("--model", "models", multiple=True, type=click.Choice(ATTRIBUTION_MODELS),
              help="Attribution model (repeat for several; default: all six).")
@click.option("--touches", help="Comma-separated touch events (default: [reports] touches, else sends, clicks, "
                                "store visits, configurator views, test drives, lead submissions).")
@as_of_option("Treat this instant as now: later events do not count.")
@_common
@click.pass_obj
def attribution(state, conversion, within_days, models, touches, as_of, store_id, fmt, out) -> None:
    """Which touches led to CONVERSION events: credits by campaign, channel, store and touch, per model.

    Models: first_touch, last_touch, linear, time_decay, position_based (40/20/40) and markov (data-driven:
    the removal effect of a first-order Markov chain over all journeys)."""
    from .attribution import DEFAULT_TOUCHES, compute_attribution
    from .common import to_epoch

    project = state.project
    settings = _reports_settings(project)
    names = ([t.strip() for t in touches.split(",") if t.strip()] if touches
             else list(settings.get("touches", DEFAULT_TOUCHES)))
    _warn_unknown_events(project, conversion)
    result = compute_attribution(project.store, conversion=conversion, within_days=within_days, models=models,
                                 touches=names, half_life_days=settings.get("attribution_half_life_days", 7.0),
                                 store_id=store_id, as_of=to_epoch(_as_of(project, as_of), project.timezone))
    _emit(result, fmt, out)


@report.command()
@click.argument("segment")
@click.option("--against", help="Compare with this segment (default: all people).")
@click.option("--tag", "tags", multiple=True, help="Describe only these tags (repeat; default: every tag with values).")
@click.option("--attribute", "profile", multiple=True,
              help="Also describe this profile attribute (repeat; default: [reports] portrait_attributes).")
@click.option("--alpha", default=0.05, show_default=True, help="False discovery rate for 'significant'.")
@_common
@click.pass_obj
def portrait(state, segment, against, tags, profile, alpha, store_id, fmt, out) -> None:
    """What distinguishes SEGMENT from the base: per tag and profile attribute, shares, lift and tests.

    Fisher's exact test per value and chi-square per attribute (segment vs the rest of the base), corrected
    by Benjamini-Hochberg; attributes sorted by Cramér's V."""
    from .portrait import compute_portrait

    project = state.project
    try:
        segments = tuple(project.rules().segments)
    except MotorcadeError:
        segments = ()
    profile = profile or tuple(_reports_settings(project).get("portrait_attributes", ()))
    result = compute_portrait(project.store, segment, against=against, tags=tags or None, profile=profile,
                              alpha=alpha, store_id=store_id, segments=segments)
    _emit(result, fmt, out)


COMMANDS: list = [report]
