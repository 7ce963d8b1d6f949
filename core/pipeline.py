"""The whole loop as one command: ingest -> tags -> segments -> run -> (reports are separate commands).

Stages come from ``[pipeline] stages`` in motorcade.toml (default: all of :data:`STAGES`, in order);
each stage is also its own command (`motorcade ingest --all`, `tags compute`, `segments compute`,
`run`). ``as_of`` pins "now" for every stage, which makes a run reproducible (the example project pins
it to the end of its generated data). The run stage's clock is pinned too, so a delivery that failed
transiently is not retried by a later pinned pipeline: `motorcade run` / `serve` (the real clock) deliver
those; the stage's summary says how many wait.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

import attrs
import click

from .as_of import as_of_option, parse_as_of
from .errors import ConfigError, MotorcadeError

STAGES = ("ingest", "tags", "segments", "run")


@attrs.define
class StageResult:
    """What one stage did: a one-line summary, details for reports, and the time it took."""

    stage: str
    seconds: float
    summary: str
    details: Any = None


def _ingest(project, as_of: dt.datetime, log: Callable[[str], None]) -> StageResult:
    from .sources.ingest import ingest, project_ingestor

    ingestor = project_ingestor(project)
    summaries = []
    for name in project.config.sources:
        summary = ingest(project, name, ingestor=ingestor)
        log(f"  {name}: read {summary.read:,}, events {summary.events:,}, people created "
            f"{summary.people_created:,}, merged {summary.merged:,}, quarantined {summary.quarantined:,}")
        for warning in summary.warnings():
            log(f"  {warning}")
        summaries.append(summary)
    total = sum(s.read for s in summaries)
    return StageResult("ingest", 0.0, f"{len(summaries)} sources, {total:,} rows read", summaries)


def _tags(project, as_of: dt.datetime, log: Callable[[str], None]) -> StageResult:
    from .tags.engine import compute_project_tags

    results = compute_project_tags(project, as_of=as_of)
    for r in results:
        log(f"  {r.calculator} v{r.version}: {r.rows_written:,} values in {r.seconds:.2f} s")
        for warning in r.warnings:
            log(f"    warning: {warning}")
    return StageResult("tags", 0.0, f"{len(results)} calculators, {sum(r.rows_written for r in results):,} values",
                       results)


def _segments(project, as_of: dt.datetime, log: Callable[[str], None]) -> StageResult:
    from .segments import compute_segments

    results = compute_segments(project, as_of=as_of)
    for r in results:
        log(f"  {r.name}: {r.size:,} members (+{r.entered:,} / -{r.left:,})")
    return StageResult("segments", 0.0, f"{len(results)} segments", results)


def _run(project, as_of: dt.datetime, log: Callable[[str], None]) -> StageResult:
    from .activation.runner import run_once
    from .activation.settings import ActivationContext

    ctx = ActivationContext.for_project(project, clock=lambda: as_of, log=log)
    report = run_once(ctx)
    for error in report.errors:
        log(f"  error: {error}")
    d = report.dispatched
    waiting = project.store.status_counts_of_sends().get("failed", 0)
    return StageResult(
        "run", 0.0,
        f"{len(report.planned_runs)} campaign runs, {sum(report.trigger_firings.values())} trigger firings, "
        f"sent {d.get('sent', 0)}, retrying {d.get('failed', 0)}, dead {d.get('dead', 0)}"
        + (f"; {waiting:,} sends wait for a retry (`motorcade run` delivers them)" if waiting else ""),
        report,
    )


STAGE_FUNCTIONS = {"ingest": _ingest, "tags": _tags, "segments": _segments, "run": _run}


def configured_stages(project) -> list[str]:
    stages = project.config.pipeline.get("stages", STAGES)
    if isinstance(stages, str) or not all(isinstance(s, str) for s in stages):
        raise ConfigError(f"{project.config.path}: [pipeline] stages must be a list of stage names, not {stages!r}",
                          hint=f"e.g. stages = {list(STAGES)!r}".replace("'", '"'))
    stages = list(stages)
    unknown = [s for s in stages if s not in STAGE_FUNCTIONS]
    if unknown:
        raise ConfigError(f"{project.config.path}: [pipeline] stages has unknown stage(s) {', '.join(unknown)}",
                          hint=f"stages are: {', '.join(STAGES)}")
    return stages


def pinned_as_of(project) -> dt.datetime | None:
    """``[pipeline] as_of`` (ISO text; naive = project time zone), if set."""
    text = project.config.pipeline.get("as_of")
    if text is None:
        return None
    try:
        return parse_as_of(text if isinstance(text, (dt.date, dt.datetime)) else str(text), project.config.tz)
    except MotorcadeError as exc:
        raise ConfigError(f"{project.config.path}: [pipeline] as_of = {text!r}: {exc.message}",
                          hint=exc.hint) from None


def run_pipeline(project, *, stages: list[str] | None = None, as_of: dt.datetime | None = None,
                 log: Callable[[str], None] = lambda message: None) -> list[StageResult]:
    """Run the stages in order; each result carries its wall-clock time."""
    as_of = as_of or pinned_as_of(project) or project.now()
    results = []
    chosen = set(stages or configured_stages(project))
    # stages always run in pipeline order, each once (`--stage run --stage tags` = tags, then run)
    for stage in [s for s in (STAGES if stages else configured_stages(project)) if s in chosen]:
        log(f"[{stage}]")
        started = time.perf_counter()
        result = STAGE_FUNCTIONS[stage](project, as_of, log)
        result.seconds = time.perf_counter() - started
        log(f"  {result.summary} ({result.seconds:.1f} s)")
        results.append(result)
    return results


@click.command()
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGES),
              help="Run only this stage (repeatable). Default: [pipeline] stages, else all.")
@as_of_option("Pin 'now' for every stage. Default: [pipeline] as_of, else the current time.")
@click.pass_obj
def pipeline(state, stages: tuple[str, ...], as_of: str | None) -> None:
    """Run the whole loop: ingest every source, compute tags and segments, run campaigns and triggers."""
    project = state.project
    pinned = parse_as_of(as_of, project.config.tz) if as_of else None
    results = run_pipeline(project, stages=list(stages) or None, as_of=pinned, log=click.echo)
    click.echo("Done: " + ", ".join(f"{r.stage} {r.seconds:.1f} s" for r in results))


COMMANDS = [pipeline]
