"""Messages that can hold a value are masked: provider answers in `sends list`, the webhook's bad-URL error."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from motorcade.activation.testing import memory_channel_plugin
from motorcade.cli import main
from motorcade.errors import MotorcadeError
from motorcade.masking import mask_message
from motorcade.project import Project


def test_sends_list_masks_a_provider_answer_that_echoes_the_body(tmp_path, register_plugin, capsys, monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    register_plugin(memory_channel_plugin("memory"), name="memory")
    directory = tmp_path / "p"
    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    (directory / "motorcade.toml").write_text('[project]\nname = "m"\ntimezone = "UTC"\n', encoding="utf-8")
    (directory / "rules" / "main.mc").write_text(
        'trigger thanks { on order  via memory template "t"  transactional  reenter always }\n', encoding="utf-8")
    (directory / "templates" / "t.txt").write_text("{{ person.name }}", encoding="utf-8")
    project = Project(directory)
    store = project.store
    from motorcade.model import Event

    with store.transaction():
        pid = store.create_person({"name": "Zhang Wei"})
        store.insert_events([Event("order", dt.datetime.now(dt.timezone.utc), pid, {}, "app", "o1")])
    project.close()
    assert main(["--project", str(directory), "run"]) == 0
    echo = ('HTTP 400 Bad Request: {"error": "rejected", "to": "+8613812345678", "openid": "oAbC9dEfGhIjKlMnOp", '
            '"email": "zhang.wei@example.com", "body": "Hello Zhang Wei, your car is due"}')
    project = Project(directory)
    with project.store.transaction():
        project.store.conn.execute("UPDATE outbox SET status = 'dead', reason = ?", (echo,))
    project.close()
    capsys.readouterr()
    for args in ([], ["--json"]):
        assert main(["--project", str(directory), "sends", "list", *args]) == 0
        out = capsys.readouterr().out
        assert "HTTP 400 Bad Request" in out and "rejected" in out
        for secret in ("13812345678", "12345678", "C9dEfGhIjKlMn", "zhang.wei", "Zhang Wei"):
            assert secret not in out, (args, secret)
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    assert main(["--project", str(directory), "sends", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["reason"] == echo


@pytest.mark.parametrize("url", ["ftp://bot:s3cretpw@hooks.example.com/in?token=tok123secret",
                                 "hooks.example.com/in?token=tok123secret&user=bot:s3cretpw@x"])
def test_the_webhook_bad_url_error_hides_password_and_token(url, monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    from motorcade_channels_webhook import WebhookChannel

    with pytest.raises(MotorcadeError) as caught:
        WebhookChannel({"url": url, "secret": "s"}, None)
    message = str(caught.value) + str(getattr(caught.value, "hint", ""))
    assert "is not an http(s) URL" in message
    assert "s3cretpw" not in message and "tok123secret" not in message


def test_a_webhook_connection_error_does_not_repeat_the_password_or_token(tmp_path, monkeypatch):
    """The delivery detail (stored as the send's reason) names the endpoint without its secrets."""
    import socket
    from pathlib import Path

    from motorcade.activation.channel import ChannelContext, OutboundMessage
    from motorcade_channels_webhook import WebhookChannel

    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = WebhookChannel({"url": f"http://bot:s3cretpw@127.0.0.1:{port}/in?token=tok123secret", "secret": "s",
                              "timeout": 2}, ChannelContext(project_dir=Path(tmp_path)))
    [result] = channel.send([OutboundMessage(idempotency_key="k:1", person_id=1, address="1", template="t",
                                             body="b", subject=None, params={}, metadata={})])
    channel.close()
    assert result.status == "transient" and f"127.0.0.1:{port}/in" in result.detail
    assert "s3cretpw" not in result.detail and "tok123secret" not in result.detail


def test_a_url_in_a_message_is_masked(monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    shown = mask_message("ConnectionRefusedError: [Errno 111] "
                         "(POST https://bot:s3cretpw@hooks.example.com/in?token=t0k)")
    assert "s3cretpw" not in shown and "t0k" not in shown and "hooks.example.com/in" in shown
