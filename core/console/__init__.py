"""The web console (`motorcade console`): server-rendered pages for operators and store staff.

Log-in with a user's API token (docs/access.md) or the one-time owner link printed at start; every page
reads through the project's store with the caller's :class:`motorcade.access.Access` set on it, so what a
page shows is narrowed to the caller's scope by the core, never by the console. See docs/console.md.
"""



def create_app(directory, **options):
    """The console of the project in ``directory`` as an ASGI app (see :func:`motorcade.console.app.create_app`;
    imported on use so building the CLI does not import Starlette and Jinja2)."""
    from .app import create_app as build

    return build(directory, **options)


__all__ = ["create_app"]
