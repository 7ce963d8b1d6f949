"""`motorcade new-plugin`: a plugin package ready to develop, test and publish.

It holds the entry point, a working example of the kind (a CSV source, an event-counting tag calculator, a
channel that POSTs JSON to an HTTP endpoint), tests that exercise that behaviour through Motorcade's pytest
fixtures (a sample file read and ingested into a temporary project; values computed on a fixture store, in full
and incrementally; messages delivered to a local HTTP server, with retryable and permanent failures), a ``test``
extra so ``pip install -e '.[test]' && pytest`` works in a fresh virtual environment, a LICENSE, a .gitignore,
a GitHub Actions workflow and a README with install, configuration, test and publish sections.

Templates use ``__NAME__``-style placeholders (not ``str.format``), so the generated code reads like code.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from .errors import MotorcadeError

KINDS = {"source": "sources", "tag": "tags", "channel": "channels"}

_MODULES = {
    "source": '''"""__TITLE__: a Motorcade source connector.

Reads people from a CSV file with a ``phone`` column; every other column becomes a profile attribute.
"""

import csv

import motorcade
from motorcade.sources.base import PersonRecord, RawIdentifier, RejectedRow, Source

__version__ = "0.1.0"


class __CLS__(Source):
    type_name = "__NAME__"
    description = "People from a CSV file with a `phone` column"
    yields = ("people",)

    def read(self, cursor=None):
        path = self.project_dir / self.settings["path"]
        batch_size = int(self.settings.get("batch_size", 1000))
        with open(path, newline="", encoding=self.settings.get("encoding", "utf-8")) as f:
            batch = []
            for number, row in enumerate(csv.DictReader(f), start=2):  # line 1 is the header
                raw = ",".join(str(v) for v in row.values())
                phone = (row.get("phone") or "").strip()
                if not phone:
                    batch.append(RejectedRow(position=f"line {number}", raw=raw, reason="no phone number"))
                else:
                    attributes = {k: v for k, v in row.items() if k != "phone" and v not in (None, "")}
                    batch.append(PersonRecord(source_key=phone, identifiers=(RawIdentifier("phone", phone),),
                                              attributes=attributes, position=f"line {number}", raw=raw))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch


@motorcade.hookimpl
def register_sources(register):
    register(__CLS__)
''',
    "tag": '''"""__TITLE__: a Motorcade tag calculator.

``__NAME___events``: how many events a person had in the last ``window_days`` days (default 90).
"""

import motorcade
from motorcade.tags.base import TagCalculator, TagDefinition

__version__ = "0.1.0"


class __CLS__(TagCalculator):
    name = "__NAME__"
    version = __version__  # stored with every value; bump it when the computation changes
    produces = (TagDefinition("__NAME___events", "number", "Events in the last window_days days",
                              value_range=(0, 1e9)),)
    depends_on_events = ()  # () and no tags read: any new event of a person makes an incremental run recount them
    default_settings = {"window_days": 90}

    def compute(self, context):
        days = int(context.settings.get("window_days", self.default_settings["window_days"]))
        person_clause, params = context.person_filter("person_id")  # empty on a full run
        rows = context.store.query(
            "SELECT person_id, count(*) FROM events WHERE person_id IS NOT NULL AND ts > :since AND ts <= :as_of"
            + person_clause + " GROUP BY person_id",
            {"since": context.as_of_epoch - days * 86400, "as_of": context.as_of_epoch, **params},
        )
        return [(person_id, "__NAME___events", count) for person_id, count in rows]


@motorcade.hookimpl
def register_tag_calculators(register):
    register(__CLS__())
''',
    "channel": '''"""__TITLE__: a Motorcade channel sender.

POSTs each message as JSON to ``[channels.__NAME__] url`` (replace with the provider's API) and classifies the
answer: 2xx sent; 429, 5xx and network errors transient (retried with backoff); any other status permanent.
"""

import json
import urllib.error
import urllib.request

import motorcade
from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult

__version__ = "0.1.0"


class __CLS__(Channel):
    name = "__NAME__"
    description = "POSTs messages as JSON to an HTTP endpoint"
    capabilities = ChannelCapabilities(address_type="phone", batch_size=1, supports_idempotency_key=True)

    def __init__(self, settings, context):
        super().__init__(settings, context)
        if not settings.get("url"):
            from motorcade.errors import ConfigError

            raise ConfigError("channel __NAME__: [channels.__NAME__] has no url",
                              hint='add url = "https://..." (the provider endpoint)')
        self.url = settings["url"]
        self.timeout = float(settings.get("timeout", 10))

    def send(self, batch):
        return [self._send_one(message) for message in batch]

    def _send_one(self, message):
        body = json.dumps({"to": message.address, "template": message.template, "text": message.body,
                           "subject": message.subject}).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": message.idempotency_key})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read(2000).decode("utf-8", "replace")
                return DeliveryResult(message.idempotency_key, "sent", provider_message_id=_message_id(answer),
                                      detail=f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}: {exc.read(500).decode('utf-8', 'replace')}"
            if exc.code == 429 or exc.code >= 500:
                retry_after = exc.headers.get("Retry-After")
                return DeliveryResult(message.idempotency_key, "transient", detail=detail,
                                      retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
            return DeliveryResult(message.idempotency_key, "permanent", detail=detail)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            return DeliveryResult(message.idempotency_key, "transient", detail=f"network error: {exc}")


def _message_id(answer):
    try:
        return str(json.loads(answer).get("id")) if answer else None
    except (ValueError, AttributeError):
        return None


@motorcade.hookimpl
def register_channels(register):
    register(__CLS__)
''',
}

_TESTS = {
    "source": '''"""The source reads tests/data/customers.csv and its people reach a Motorcade project through the core."""

import shutil
from pathlib import Path

from motorcade.project import Project
from motorcade.sources.base import PersonRecord, RejectedRow
from motorcade.sources.ingest import ingest

import __MODULE__

DATA = Path(__file__).parent / "data"


def test_reads_people_and_rejects_rows_without_a_phone(tmp_path):
    source = __MODULE__.__CLS__("crm", {"path": "customers.csv"}, DATA)
    records = [record for batch in source.read() for record in batch]
    people = [r for r in records if isinstance(r, PersonRecord)]
    assert [p.identifiers[0].value for p in people] == ["13761982345", "13912345678"]
    assert people[0].attributes == {"name": "Zhang Wei", "city": "Shanghai"}
    [rejected] = [r for r in records if isinstance(r, RejectedRow)]
    assert rejected.position == "line 4" and rejected.reason == "no phone number"


def test_ingests_into_a_project(register_plugin, motorcade_project, motorcade_pm):
    register_plugin(__MODULE__, name="__NAME__")
    directory = motorcade_project.directory
    shutil.copy(DATA / "customers.csv", directory / "customers.csv")
    config = directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8")
                      + '\\n[sources.crm]\\ntype = "__NAME__"\\npath = "customers.csv"\\n', encoding="utf-8")
    project = Project(directory, plugin_manager=motorcade_pm)
    try:
        summary = ingest(project, "crm")
        assert (summary.people_created, summary.rejected) == (2, 1)
        again = ingest(project, "crm")  # re-reading the same file creates nobody
        assert again.people_created == 0
    finally:
        project.close()
''',
    "tag": '''"""The calculator computes values on a fixture store: a full run and an incremental run."""

import datetime as dt

from motorcade.model import Event
from motorcade.tags.base import TagContext

import __MODULE__

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def test_is_registered(register_plugin, motorcade_pm):
    register_plugin(__MODULE__, name="__NAME__")
    assert motorcade_pm.registry().tag_calculator("__NAME__").produces[0].name == "__NAME___events"


def test_counts_events_in_the_window(motorcade_project):
    store = motorcade_project.store
    busy, quiet, idle = (store.create_person({"name": n}) for n in ("busy", "quiet", "idle"))
    store.insert_events([
        Event("page_viewed", AS_OF - dt.timedelta(days=1), person_id=busy, source="test", dedup_key="1"),
        Event("test_drive", AS_OF - dt.timedelta(days=30), person_id=busy, source="test", dedup_key="2"),
        Event("page_viewed", AS_OF - dt.timedelta(days=200), person_id=busy, source="test", dedup_key="3"),
        Event("page_viewed", AS_OF - dt.timedelta(days=2), person_id=quiet, source="test", dedup_key="4"),
        Event("page_viewed", AS_OF + dt.timedelta(days=1), person_id=idle, source="test", dedup_key="5"),
    ])
    calculator = __MODULE__.__CLS__()
    full = calculator.compute(TagContext(store=store, as_of=AS_OF, settings={"window_days": 90}))
    assert sorted(full) == sorted([(busy, "__NAME___events", 2), (quiet, "__NAME___events", 1)])
    wide = calculator.compute(TagContext(store=store, as_of=AS_OF, settings={"window_days": 365}))
    assert (busy, "__NAME___events", 3) in wide
    incremental = calculator.compute(TagContext(store=store, as_of=AS_OF, settings={"window_days": 90},
                                                person_ids=frozenset({quiet})))
    assert list(incremental) == [(quiet, "__NAME___events", 1)]
''',
    "channel": '''"""The channel delivers to a local HTTP server and classifies its answers."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from motorcade.activation.channel import ChannelContext, OutboundMessage

import __MODULE__


@pytest.fixture
def provider():
    """A local stand-in for the provider: records each request and answers with the next queued status."""
    received, answers = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers["Idempotency-Key"], body))
            status = answers.pop(0) if answers else 200
            payload = json.dumps({"id": f"msg-{len(received)}"} if status == 200 else {"error": "no"}).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "30")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/send", received, answers
    finally:
        server.shutdown()
        server.server_close()


def message(key):
    return OutboundMessage(key, 1, "+8613761982345", "welcome", "Hello from the dealer")


def channel_for(url, tmp_path, register_plugin, motorcade_pm):
    register_plugin(__MODULE__, name="__NAME__")
    channel_class = motorcade_pm.registry().channel_class("__NAME__")
    return channel_class({"url": url, "timeout": 5}, ChannelContext(project_dir=tmp_path))


def test_delivers_to_the_provider(provider, tmp_path, register_plugin, motorcade_pm):
    url, received, _ = provider
    channel = channel_for(url, tmp_path, register_plugin, motorcade_pm)
    [result] = channel.send([message("k1")])
    assert (result.idempotency_key, result.status, result.provider_message_id) == ("k1", "sent", "msg-1")
    assert received == [("k1", {"to": "+8613761982345", "template": "welcome", "text": "Hello from the dealer",
                                "subject": None})]


def test_classifies_failures(provider, tmp_path, register_plugin, motorcade_pm):
    url, _, answers = provider
    channel = channel_for(url, tmp_path, register_plugin, motorcade_pm)
    answers.extend([429, 503, 400])
    results = channel.send([message("a"), message("b"), message("c")])
    assert [(r.status, r.retry_after) for r in results] == [("transient", 30.0), ("transient", None),
                                                           ("permanent", None)]


def test_unreachable_provider_is_transient(tmp_path, register_plugin, motorcade_pm):
    channel = channel_for("http://127.0.0.1:9/send", tmp_path, register_plugin, motorcade_pm)
    [result] = channel.send([message("k")])
    assert result.status == "transient" and "network error" in result.detail
''',
}

_SAMPLE_CSV = "phone,name,city\n13761982345,Zhang Wei,Shanghai\n13912345678,Li Na,Beijing\n,No Phone,Nanjing\n"

_CONFIG = {
    "source": '[sources.crm]\ntype = "__NAME__"\npath = "data/customers.csv"   # relative to the project\n'
              'batch_size = 1000\nencoding = "utf-8"',
    "tag": '[tags.__NAME__]\nwindow_days = 90   # count events of the last 90 days',
    "channel": '[channels.__NAME__]\nurl = "https://api.example.com/send"   # the provider endpoint\ntimeout = 10',
}

_USE = {
    "source": "Then `motorcade ingest crm` reads the file; rows without a phone go to quarantine.",
    "tag": "Then `motorcade tags compute __NAME__` computes `__NAME___events`; rules use it as "
           "`tag __NAME___events >= 3`.",
    "channel": 'Then campaigns and triggers send through it: `via __NAME__ template "welcome"`.',
}

_README = """# __DIST__

__TITLE__ plugin for Motorcade, the customer-data and marketing-automation rules engine.

## Install

```sh
motorcade install __DIST__          # from a package index, once published
motorcade install -e path/to/__ROOTNAME__   # while developing
motorcade plugins                   # lists `__NAME__`
```

## Configure

In the project's `motorcade.toml`:

```toml
__CONFIG__
```

__USE__

## Test

```sh
python -m venv .venv && . .venv/bin/activate
pip install -e '.[test]'
pytest
```

The tests use Motorcade's pytest fixtures (`motorcade_pm`, `register_plugin`, `motorcade_project`); see
Motorcade's docs/plugins.md. `.github/workflows/test.yml` runs them on every push.

## Publish

```sh
pip install build twine
python -m build
twine upload dist/*
```

Users then install it with `motorcade install __DIST__`.
"""

_PYPROJECT = """[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "__TITLE__ plugin for Motorcade"
readme = "README.md"
license = "MIT"
license-files = ["LICENSE"]
requires-python = ">=3.11"
dependencies = ["motorcade"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points.motorcade]
__NAME__ = "__MODULE__"

[tool.setuptools]
packages = ["__MODULE__"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_WORKFLOW = """name: test
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        python-version: ["3.11", "3.12"]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: ${{ matrix.python-version }}
      - run: pip install -e '.[test]'
      - run: pytest
"""

_GITIGNORE = """__pycache__/
*.py[cod]
*.egg-info/
build/
dist/
.venv/
.pytest_cache/
*.db
*.db-wal
*.db-shm
"""

_LICENSE = """MIT License

Copyright (c) __YEAR__ the __DIST__ authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def _fill(template: str, values: dict[str, str]) -> str:
    # longest placeholders first, so __NAME__ does not eat into __NAME___events's neighbours
    for key in sorted(values, key=len, reverse=True):
        template = template.replace(f"__{key}__", values[key])
    return template


def new_plugin(kind: str, name: str, directory: Path) -> Path:
    """Write a plugin package for ``kind`` (source, tag, channel) called ``name`` under ``directory``;
    return the package's root directory."""
    if kind not in KINDS:
        raise MotorcadeError(f"unknown plugin kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise MotorcadeError(f"plugin name {name!r} must be lower case letters, digits and _",
                             hint="e.g. wecom_group or dms_api")
    module = f"motorcade_{KINDS[kind]}_{name}"
    root = Path(directory) / name
    if root.exists():
        raise MotorcadeError(f"{root} already exists", hint="choose another name or directory")
    values = {
        "NAME": name,
        "MODULE": module,
        "CLS": "".join(part.capitalize() for part in name.split("_")) + kind.capitalize(),
        "TITLE": f"The {name} {kind}",
        "DIST": f"motorcade-{kind}-{name.replace('_', '-')}",
        "ROOTNAME": name,
        "YEAR": str(dt.date.today().year),
    }
    values["CONFIG"] = _fill(_CONFIG[kind], values)
    values["USE"] = _fill(_USE[kind], values)
    files = {
        "pyproject.toml": _PYPROJECT,
        f"{module}/__init__.py": _MODULES[kind],
        f"tests/test_{name}.py": _TESTS[kind],
        "README.md": _README,
        "LICENSE": _LICENSE,
        ".gitignore": _GITIGNORE,
        ".github/workflows/test.yml": _WORKFLOW,
    }
    if kind == "source":
        files["tests/data/customers.csv"] = _SAMPLE_CSV
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template if relative.endswith((".yml", ".csv")) else _fill(template, values)
        path.write_text(text, encoding="utf-8")
    return root
