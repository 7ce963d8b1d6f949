"""``motorcade.toml``: a project's configuration, with documented defaults.

::

    [project]
    name = "dealer_group"
    timezone = "Asia/Shanghai"    # the project's time zone: relative times in rules resolve in it
    database = "motorcade.db"     # file path (relative to the project) or sqlite:///path
    rules = ["rules"]             # rule files (*.mc) or folders of them

    [sources.crm]                 # one table per configured source; `type` names a source plugin
    type = "csv"

    [tags.activity]               # settings per tag calculator (thresholds, weights)
    [channels.email]              # settings per channel plugin
    [guardrails]                  # consent, quiet hours, frequency caps (activation)
    [pipeline]                    # the stages `motorcade pipeline` runs

Any string value may name environment variables: ``"${SMTP_HOST}"`` or ``"${SMTP_PORT:-2525}"``
(with a default). Keep secrets out of the file this way. A variable that is unset and has no default
is an error naming the setting.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError

CONFIG_FILENAME = "motorcade.toml"
DEFAULT_TIMEZONE = "Asia/Shanghai"


@attrs.frozen
class ProjectConfig:
    """The parsed configuration of one project."""

    path: Path  # the motorcade.toml file
    name: str  # project name
    timezone: str  # IANA time zone of the project
    database: str  # database setting (path or URL)
    rules: tuple[str, ...]  # rule paths, relative to the project directory
    sources: dict[str, dict[str, Any]]  # [sources.NAME] tables
    tags: dict[str, dict[str, Any]]  # [tags.NAME] tables
    channels: dict[str, dict[str, Any]]  # [channels.NAME] tables
    identity: dict[str, Any]  # [identity] table
    guardrails: dict[str, Any]  # [guardrails] table
    pipeline: dict[str, Any]  # [pipeline] table
    raw: dict[str, Any]  # the whole document, for plugins' own sections

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_environment(value: Any, path: Path, where: str = "") -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string of a parsed TOML document."""
    if isinstance(value, dict):
        return {k: expand_environment(v, path, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_environment(v, path, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: {where} refers to ${{{name}}}, which is not set",
                          hint=f"export {name}=... or write a default: ${{{name}:-value}}")

    # Always text: a secret of digits keeps its leading zeros; settings that need a number convert it.
    return _ENV_REFERENCE.sub(replace, value)


def _table(doc: dict, key: str, path: Path) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{key}] must be a table, not {type(value).__name__}")
    return value


def load_config(path: Path) -> ProjectConfig:
    """Read and validate ``motorcade.toml``."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist", hint="create a project with `motorcade init DIR`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    doc = expand_environment(doc, path)
    from .config_schema import validate_document

    validate_document(doc, path)
    project = _table(doc, "project", path)
    rules = project.get("rules", ["rules"])
    sources = _table(doc, "sources", path)
    return ProjectConfig(
        path=path,
        name=project.get("name", path.parent.name),
        timezone=project.get("timezone", DEFAULT_TIMEZONE),
        database=project.get("database", "motorcade.db"),
        rules=(rules,) if isinstance(rules, str) else tuple(rules),
        sources={name: dict(table) for name, table in sources.items()},
        tags=_table(doc, "tags", path),
        channels={name: dict(table) for name, table in _table(doc, "channels", path).items()},
        identity=_table(doc, "identity", path),
        guardrails=_table(doc, "guardrails", path),
        pipeline=_table(doc, "pipeline", path),
        raw=doc,
    )


INIT_TEMPLATE = """\
# Motorcade project configuration. Every table and key is described in docs/config.md
# (`motorcade config reference` prints the same page for the plugins installed here).
[project]
name = {name}
timezone = "Asia/Shanghai"
database = "motorcade.db"
rules = ["rules"]

# A source per system you load from, e.g.:
# [sources.crm]
# type = "csv"
# path = "data/crm_customers.csv"

[guardrails]
# at most this many marketing messages per person in the window (transactional triggers are exempt)
frequency_cap = {{ count = 2, days = 7 }}
# no marketing sends between these local hours; sends are deferred, not dropped
quiet_hours = {{ start = "21:00", end = "09:00" }}
"""
