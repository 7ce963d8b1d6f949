"""`motorcade new-plugin`: a plugin package with its entry point, a README and a passing test."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import MotorcadeError

KINDS = {"source": "sources", "tag": "tags", "channel": "channels"}

_MODULES = {
    "source": '''"""{title}: a Motorcade source connector."""

import csv

import motorcade
from motorcade.sources.base import PersonRecord, RawIdentifier, Source

__version__ = "0.1.0"


class {cls}(Source):
    type_name = "{name}"
    description = "Reads people from a CSV file with a `phone` column"
    yields = ("people",)

    def read(self, cursor=None):
        path = self.project_dir / self.settings["path"]
        with open(path, newline="", encoding="utf-8") as f:
            batch = []
            for number, row in enumerate(csv.DictReader(f), start=2):
                batch.append(PersonRecord(source_key=row["phone"], identifiers=(RawIdentifier("phone", row["phone"]),),
                                          attributes={{k: v for k, v in row.items() if k != "phone"}},
                                          position=f"line {{number}}", raw=",".join(row.values())))
            yield batch


@motorcade.hookimpl
def register_sources(register):
    register({cls})
''',
    "tag": '''"""{title}: a Motorcade tag calculator."""

import motorcade
from motorcade.tags.base import TagCalculator, TagDefinition

__version__ = "0.1.0"


class {cls}(TagCalculator):
    name = "{name}"
    version = __version__
    produces = (TagDefinition("{name}_events", "number", "Number of events a person has"),)
    depends_on_events = ()

    def compute(self, context):
        rows = context.store.query("SELECT person_id, count(*) FROM events WHERE person_id IS NOT NULL "
                                   "GROUP BY person_id")
        return [(person_id, "{name}_events", count) for person_id, count in rows]


@motorcade.hookimpl
def register_tag_calculators(register):
    register({cls}())
''',
    "channel": '''"""{title}: a Motorcade channel sender."""

import motorcade
from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult

__version__ = "0.1.0"


class {cls}(Channel):
    name = "{name}"
    description = "Delivers messages to ... (replace with the provider's API)"
    capabilities = ChannelCapabilities(address_type="phone", batch_size=1)

    def send(self, batch):
        # Call the provider here; classify its answer as sent / transient / permanent.
        return [DeliveryResult(message.idempotency_key, "sent", detail="accepted") for message in batch]


@motorcade.hookimpl
def register_channels(register):
    register({cls})
''',
}

_TESTS = {
    "source": '''def test_registers(register_plugin, motorcade_pm):
    import {module}

    register_plugin({module}, name="{name}")
    assert motorcade_pm.registry().source_class("{name}").type_name == "{name}"
''',
    "tag": '''def test_registers(register_plugin, motorcade_pm):
    import {module}

    register_plugin({module}, name="{name}")
    assert motorcade_pm.registry().tag_calculator("{name}").produces
''',
    "channel": '''def test_registers_and_sends(register_plugin, motorcade_pm, tmp_path):
    import {module}
    from motorcade.activation.channel import ChannelContext, OutboundMessage

    register_plugin({module}, name="{name}")
    channel_class = motorcade_pm.registry().channel_class("{name}")
    channel = channel_class({{}}, ChannelContext(project_dir=tmp_path))
    results = channel.send([OutboundMessage("k1", 1, "+8613800000001", "welcome", "hello")])
    assert [(r.idempotency_key, r.status) for r in results] == [("k1", "sent")]
''',
}


def new_plugin(kind: str, name: str, directory: Path) -> Path:
    """Write a plugin package for ``kind`` (source, tag, channel) called ``name`` under ``directory``."""
    if kind not in KINDS:
        raise MotorcadeError(f"unknown plugin kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise MotorcadeError(f"plugin name {name!r} must be lower case letters, digits and _",
                             hint="e.g. wecom_group or dms_api")
    module = f"motorcade_{KINDS[kind]}_{name}"
    root = directory / name
    if root.exists():
        raise MotorcadeError(f"{root} already exists", hint="choose another name or directory")
    cls = "".join(part.capitalize() for part in name.split("_")) + kind.capitalize()
    title = f"{name} {kind}"
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(
        f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "motorcade-{kind}-{name.replace('_', '-')}"
version = "0.1.0"
description = "Motorcade {title}"
requires-python = ">=3.11"
dependencies = ["motorcade"]

[project.entry-points.motorcade]
{name} = "{module}"

[tool.setuptools]
packages = ["{module}"]
''', encoding="utf-8")
    (root / module / "__init__.py").write_text(_MODULES[kind].format(title=title, cls=cls, name=name),
                                               encoding="utf-8")
    (root / "tests" / f"test_{name}.py").write_text(_TESTS[kind].format(module=module, name=name),
                                                    encoding="utf-8")
    (root / "README.md").write_text(
        f"# motorcade-{kind}-{name}\n\nA Motorcade {kind} plugin.\n\n"
        f"Install it next to Motorcade (`pip install -e {root}`); `motorcade plugins` then lists it.\n"
        f"Run its test with `pytest {root / 'tests'}`.\n", encoding="utf-8")
    return root
