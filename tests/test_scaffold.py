"""`motorcade new-plugin` produces packages that install, register through their entry point and pass their test."""

import subprocess
import sys

import pytest

from motorcade.scaffold import new_plugin


@pytest.mark.parametrize("kind", ["source", "tag", "channel"])
def test_generated_plugin_passes_its_own_test(tmp_path, kind):
    root = new_plugin(kind, f"demo_{kind}", tmp_path)
    # Run its test with the package importable (as an installed plugin would be), in a fresh interpreter.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""}, cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_entry_point_is_declared(tmp_path):
    root = new_plugin("channel", "foo", tmp_path)
    text = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.motorcade]\nfoo = "motorcade_channels_foo"' in text
