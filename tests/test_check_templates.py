"""`motorcade check` on a project also checks the templates and channels its campaigns and triggers use."""

import subprocess
import sys

RULES = """
segment everyone {
  where profile.name is not null
}
campaign hello {
  audience everyone
  schedule daily at 10:00
  send to all members
  via webhook template "hello"
}
"""


def run(project, *args):
    return subprocess.run([sys.executable, "-m", "motorcade.cli", "--project", str(project), *args],
                          capture_output=True, text=True)


def test_check_reports_a_missing_template_and_an_unknown_field(tmp_path):
    project = tmp_path / "p"
    assert run(tmp_path, "init", str(project)).returncode == 0
    (project / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    missing = run(project, "check")
    assert missing.returncode == 1 and "template 'hello'" in missing.stdout, missing.stdout + missing.stderr
    # attribute names are checked once the store knows some (an empty store knows none)
    from motorcade.store import open_store

    store = open_store(project / "motorcade.db")
    store.create_person({"name": "张伟"})
    store.close()
    (project / "templates").mkdir()
    (project / "templates" / "hello.txt").write_text("{{ person.nmae }}您好", encoding="utf-8")
    typo = run(project, "check")
    assert typo.returncode == 1 and "did you mean `person.name`" in typo.stdout, typo.stdout
    (project / "templates" / "hello.txt").write_text("{{ person.name }}您好", encoding="utf-8")
    fine = run(project, "check")
    assert fine.returncode == 0, fine.stdout + fine.stderr
