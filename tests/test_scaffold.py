"""`motorcade new-plugin` produces packages that install, register through their entry point and pass tests that
exercise their behaviour, with everything a published plugin needs (test extra, LICENSE, .gitignore, CI, README)."""

import subprocess
import sys
import tomllib

import pytest

from motorcade.errors import MotorcadeError
from motorcade.scaffold import new_plugin

# kind -> how many tests the generated package has (each exercising behaviour, not only registration)
EXPECTED_TESTS = {"source": 2, "tag": 2, "channel": 3}


def pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"], capture_output=True,
                          text=True)


@pytest.mark.parametrize("kind", sorted(EXPECTED_TESTS))
def test_generated_plugin_installs_and_passes_its_tests(tmp_path, kind):
    name = f"scaffold_{kind}"
    root = new_plugin(kind, name, tmp_path)
    dist = f"motorcade-{kind}-scaffold-{kind}"
    # Installed as a user would (editable, through its entry point), without the network: Motorcade is already
    # here and the build backend too.
    installed = pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(root))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        listed = subprocess.run([sys.executable, "-m", "motorcade.cli", "plugins", "--json"], capture_output=True,
                                text=True)
        assert f'"distribution": "{dist}"' in listed.stdout, listed.stdout + listed.stderr
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
                                capture_output=True, text=True, cwd=root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{EXPECTED_TESTS[kind]} passed" in result.stdout, result.stdout
    finally:
        pip("uninstall", "-y", dist)


@pytest.mark.parametrize("kind", sorted(EXPECTED_TESTS))
def test_generated_package_has_what_a_published_plugin_needs(tmp_path, kind):
    root = new_plugin(kind, "foo", tmp_path)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["motorcade"] == {"foo": f"motorcade_{kind}s_foo"}
    assert any(req.startswith("pytest") for req in pyproject["project"]["optional-dependencies"]["test"])
    assert "MIT License" in (root / "LICENSE").read_text()
    assert "__pycache__/" in (root / ".gitignore").read_text()
    workflow = (root / ".github" / "workflows" / "test.yml").read_text()
    assert "pip install -e '.[test]'" in workflow and "run: pytest" in workflow
    readme = (root / "README.md").read_text()
    for section in ("## Install", "## Configure", "## Test", "## Publish"):
        assert section in readme, section
    assert "__" not in readme.replace("__init__", "")  # every placeholder filled
    assert "motorcade install" in readme and "[tests.foo]" not in readme


def test_bad_names_and_existing_directories_are_refused(tmp_path):
    with pytest.raises(MotorcadeError, match="lower case"):
        new_plugin("channel", "Bad-Name", tmp_path)
    new_plugin("channel", "foo", tmp_path)
    with pytest.raises(MotorcadeError, match="already exists"):
        new_plugin("channel", "foo", tmp_path)
