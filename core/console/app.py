"""The console's Starlette app: routes, log-in, CSRF checks, and one project (with the caller) per request."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from motorcade.access import AccessDenied
from motorcade.errors import MotorcadeError

from . import pages
from .charts import bar_svg, size_history_svg
from .highlight import highlight
from .sessions import COOKIE, Session, Sessions, csrf_ok

HERE = Path(__file__).parent


class Console:
    """One project's console: sessions, templates and the routes of :meth:`app`."""

    def __init__(self, directory: str | Path, *, plugin_manager=None, sessions: Sessions | None = None):
        self.directory = Path(directory).resolve()
        self.plugin_manager = plugin_manager
        self.sessions = sessions or Sessions()
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.filters["highlight"] = highlight
        self.templates.globals.update(size_history_svg=size_history_svg, bar_svg=bar_svg)

    # -- plumbing ------------------------------------------------------------------------------------

    def project_for(self, session: Session):
        """A fresh project for this request with the session's caller on it (checked again every time: a
        token revoked or expired since log-in is refused now)."""
        from motorcade.access import Access
        from motorcade.access.login import caller_from_token
        from motorcade.masking import permit_pii
        from motorcade.plugins import get_plugin_manager
        from motorcade.project import Project

        project = Project(self.directory, plugin_manager=self.plugin_manager or get_plugin_manager())
        try:
            project.access = Access.local_owner() if session.owner else caller_from_token(project.store,
                                                                                            session.token)
        except Exception:
            project.close()
            raise
        permit_pii(False)  # the console always masks personal data (docs/console.md)
        return project

    def render(self, template: str, session: Session | None, status: int = 200, **context) -> HTMLResponse:
        html = self.templates.get_template(template).render(csrf=session.csrf if session else "", **context)
        return HTMLResponse(html, status_code=status)

    def _session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def _set_cookie(self, response: Response, session: Session) -> Response:
        response.set_cookie(COOKIE, self.sessions.sign(session.sid), httponly=True, samesite="lax", path="/")
        return response

    async def _form(self, request: Request, session: Session | None):
        form = await request.form()
        if not csrf_ok(session, form.get("csrf") or request.headers.get("x-csrf-token")):
            return None
        return form

    def page(self, handler: Callable) -> Callable:
        """A route that needs a logged-in caller: ``handler(request, session, project, form)``; POSTs must
        carry the session's CSRF token."""
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            session = self._session(request)
            if session is None or not session.logged_in:
                return RedirectResponse("/login", status_code=303)
            form = None
            if request.method == "POST":
                form = await self._form(request, session)
                if form is None:
                    return self.render("error.html", session, 403, title="Forbidden", caller=None,
                                       message="the form's CSRF token is missing or wrong",
                                       hint="reload the page and submit the form again")
            return await run_in_threadpool(self._run, handler, request, session, form)
        return endpoint

    def _run(self, handler, request, session, form) -> Response:
        try:
            project = self.project_for(session)
        except AccessDenied as exc:
            self.sessions.drop(session)
            again = self.sessions.new()
            return self._set_cookie(self.render("login.html", again, 401, error=exc.message, hint=exc.hint), again)
        try:
            return handler(request, session, project, form)
        except AccessDenied as exc:
            return self.render("error.html", session, 403, title="Not allowed", message=exc.message, hint=exc.hint,
                               caller=pages.caller_summary(project))
        except MotorcadeError as exc:
            return self.render("error.html", session, 400, title="Error", message=getattr(exc, "message", str(exc)), hint=exc.hint,
                               caller=pages.caller_summary(project))
        finally:
            project.close()

    # -- log-in --------------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        session = self._session(request) or self.sessions.new()
        return self._set_cookie(self.render("login.html", session), session)

    async def login(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        session = self._session(request)
        form = await self._form(request, session)
        if form is None:
            fresh = self.sessions.new()
            return self._set_cookie(self.render("login.html", fresh, 403,
                                                error="the log-in form expired; please log in again"), fresh)
        token = (form.get("token") or "").strip()
        fresh = self.sessions.new()  # a new id after log-in: an id planted before cannot ride along
        fresh.token = token
        try:
            project = await run_in_threadpool(self.project_for, fresh)
        except AccessDenied as exc:
            self.sessions.drop(fresh)
            again = self.sessions.new()
            return self._set_cookie(self.render("login.html", again, 401, error=exc.message, hint=exc.hint), again)
        project.close()
        self.sessions.drop(session)
        return self._set_cookie(RedirectResponse("/", status_code=303), fresh)

    async def owner_login(self, request: Request) -> Response:
        if not self.sessions.take_owner_code(request.query_params.get("code", "")):
            session = self.sessions.new()
            return self._set_cookie(self.render("login.html", session, 401,
                                                error="this owner link was used already or is not this console's",
                                                hint="restart `motorcade console` for a new one, or log in with "
                                                     "a token"), session)
        fresh = self.sessions.new()
        fresh.owner = True
        return self._set_cookie(RedirectResponse("/", status_code=303), fresh)

    async def logout(self, request: Request) -> Response:
        session = self._session(request)
        if session is not None and await self._form(request, session) is not None:
            self.sessions.drop(session)
        return RedirectResponse("/login", status_code=303)

    # -- pages ---------------------------------------------------------------------------------------

    def overview(self, request, session, project, form):
        return self.render("overview.html", session, caller=pages.caller_summary(project), nav="overview",
                           data=pages.overview(project), now=pages.now_text(project))

    def segments(self, request, session, project, form):
        return self.render("segments.html", session, caller=pages.caller_summary(project), nav="segments",
                           segments=pages.segment_list(project))

    def segment(self, request, session, project, form):
        name = request.path_params["name"]
        explained = None
        person = request.query_params.get("person", "").strip()
        if person:
            if not person.isdigit():
                raise MotorcadeError(f"{person!r} is not a person id", hint="person ids are numbers, e.g. 42")
            explained = pages.explain_person(project, name, int(person))
        return self.render("segment.html", session, caller=pages.caller_summary(project), nav="segments",
                           s=pages.segment_detail(project, name), explained=explained)

    def export(self, request, session, project, form):
        from motorcade.segments.members import COLUMNS

        name = request.path_params["name"]
        rows = pages.export_members(project, name)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}.csv"'})

    def edit(self, request, session, project, form):
        name = request.path_params["name"]
        rule_set = project.rules()
        if name not in rule_set.segments:
            raise MotorcadeError(f"no segment named {name!r} in the rules")
        _, rule_file = pages.find_segment_file(rule_set, name)
        context = {"name": name, "file": rule_file.filename, "file_name": Path(rule_file.filename).name,
                   "text": rule_file.source, "result": None, "published": None, "action": None}
        if form is not None:
            text = str(form.get("text", "")).replace("\r\n", "\n")
            action = form.get("action", "check")
            context.update(text=text, action=action)
            if action == "publish":
                context["published"] = pages.publish_edit(project, rule_file.filename, text)
            else:
                context["result"] = pages.check_edit(project, rule_file.filename, text,
                                                     with_diff=action == "preview")
        else:
            pages.check_edit(project, rule_file.filename, rule_file.source)  # refuses a file outside the scope
        return self.render("edit.html", session, caller=pages.caller_summary(project), nav="segments", **context)

    def check_json(self, request, session, project, form):
        name = request.path_params["name"]
        rule_set = project.rules()
        _, rule_file = pages.find_segment_file(rule_set, name)
        result = pages.check_edit(project, rule_file.filename, str(form.get("text", "")).replace("\r\n", "\n"))
        return JSONResponse({"errors": [{"severity": d.severity, "message": d.message, "line": d.line,
                                         "column": d.column, "rendered": d.render().replace(
                                             rule_file.filename, Path(rule_file.filename).name)}
                                        for d in result.errors]})

    def campaigns(self, request, session, project, form):
        return self.render("campaigns.html", session, caller=pages.caller_summary(project), nav="campaigns",
                           data=pages.campaigns(project))

    def journeys(self, request, session, project, form):
        return self.render("journeys.html", session, caller=pages.caller_summary(project), nav="journeys",
                           journeys=pages.journeys(project))

    def tags(self, request, session, project, form):
        return self.render("tags.html", session, caller=pages.caller_summary(project), nav="tags",
                           data=pages.tags(project))

    def sends(self, request, session, project, form):
        retried = None
        if form is not None:
            keys = [k for k in form.getlist("key") if k]
            retried = pages.retry_dead(project, keys)
        return self.render("sends.html", session, caller=pages.caller_summary(project), nav="sends",
                           data=pages.sends(project), retried=retried)

    def quarantine(self, request, session, project, form):
        retried = None
        if form is not None:
            retried = pages.retry_quarantine(project, [int(i) for i in form.getlist("id") if str(i).isdigit()])
        return self.render("quarantine.html", session, caller=pages.caller_summary(project), nav="quarantine",
                           rows=pages.quarantine(project), retried=retried)

    def app(self) -> Starlette:
        p = self.page
        routes = [
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/login/owner", self.owner_login, methods=["GET"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", p(self.overview)),
            Route("/segments", p(self.segments)),
            Route("/segments/{name}", p(self.segment)),
            Route("/segments/{name}/members.csv", p(self.export)),
            Route("/segments/{name}/edit", p(self.edit), methods=["GET", "POST"]),
            Route("/segments/{name}/check", p(self.check_json), methods=["POST"]),
            Route("/campaigns", p(self.campaigns)),
            Route("/journeys", p(self.journeys)),
            Route("/tags", p(self.tags)),
            Route("/sends", p(self.sends), methods=["GET", "POST"]),
            Route("/quarantine", p(self.quarantine), methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        app = Starlette(routes=routes)
        app.state.console = self
        return app


def create_app(directory: str | Path, *, plugin_manager=None, sessions: Sessions | None = None) -> Starlette:
    """The console of the project in ``directory`` as an ASGI app (``app.state.console`` is the Console)."""
    return Console(directory, plugin_manager=plugin_manager, sessions=sessions).app()
