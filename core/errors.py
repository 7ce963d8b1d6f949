"""Exceptions an operator can act on, and the CLI exit codes they map to.

Exit codes (documented in README "Exit codes"):
    0  success
    1  domain error: a bad rule file, bad data, a failed rule test, a check that found problems
    2  usage error: unknown option, missing argument, no project found (click's own convention)
"""

EXIT_OK = 0
EXIT_DOMAIN_ERROR = 1
EXIT_USAGE_ERROR = 2


class MotorcadeError(Exception):
    """Base class for errors shown to an operator: the message says what, where, and what to do."""

    exit_code = EXIT_DOMAIN_ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(MotorcadeError):
    """``motorcade.toml`` is missing, unreadable or has a bad value."""


class ProjectNotFound(MotorcadeError):
    """No project directory could be located (no ``motorcade.toml``)."""

    exit_code = EXIT_USAGE_ERROR


class UsageError(MotorcadeError):
    """The command line is incomplete or contradicts itself (a missing argument, nothing to work on)."""

    exit_code = EXIT_USAGE_ERROR


class PluginError(MotorcadeError):
    """A plugin registered something invalid (bad object, duplicate name)."""


class PluginNotLoaded(PluginError):
    """A name (channel, source type, tag calculator) belongs to an installed plugin that failed to load.

    ``failure`` is the :class:`motorcade.plugins.PluginLoadError` (entry point, distribution, error). Callers
    that must not lose work because of it (planned sends for the channel) keep that work pending.
    """

    def __init__(self, message: str, failure, hint: str | None = None):
        super().__init__(message, hint)
        self.failure = failure


class DataError(MotorcadeError):
    """A data row cannot be used; names the source, the row and the field."""

    def __init__(self, message: str, *, source: str | None = None, row: int | str | None = None,
                 field: str | None = None, hint: str | None = None):
        where = ", ".join(
            f"{k} {v}" for k, v in (("source", source), ("row", row), ("field", field)) if v is not None
        )
        super().__init__(f"{message} ({where})" if where else message, hint)
        self.source = source
        self.row = row
        self.field = field
