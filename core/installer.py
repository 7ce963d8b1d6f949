"""`motorcade install` / `motorcade uninstall`: plugins go into the environment Motorcade itself runs in.

As ``llm install`` does, this runs pip with the interpreter running Motorcade (``sys.executable -m pip``), so a
plugin lands next to the core whether Motorcade was installed with pip, pipx or uv's tool install, and
``motorcade plugins`` lists it on the next run.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence

from .errors import MotorcadeError, UsageError


def pip_command(*args: str) -> list[str]:
    """The pip command line for Motorcade's own environment."""
    return [sys.executable, "-m", "pip", *args]


def install_packages(packages: Sequence[str], *, upgrade: bool = False, editable: str | None = None,
                     force_reinstall: bool = False, no_cache_dir: bool = False, pre: bool = False,
                     extra_args: Sequence[str] = ()) -> None:
    """Install ``packages`` (names, version specifiers, paths, wheel files, URLs) and/or ``editable`` (a local
    directory, installed with ``-e``) into Motorcade's environment. Raises :class:`MotorcadeError` when pip fails
    (pip's own output has already been shown)."""
    if not packages and not editable:
        raise UsageError("name the packages to install", hint="e.g. motorcade install motorcade-channel-foo")
    args = ["install"]
    if upgrade:
        args.append("--upgrade")
    if force_reinstall:
        args.append("--force-reinstall")
    if no_cache_dir:
        args.append("--no-cache-dir")
    if pre:
        args.append("--pre")
    args.extend(extra_args)
    if editable:
        args.extend(["--editable", editable])
    args.extend(packages)
    _run_pip(args, "install")


def uninstall_packages(packages: Sequence[str], *, yes: bool = False) -> None:
    """Uninstall ``packages`` from Motorcade's environment (``yes``: do not ask for confirmation)."""
    if not packages:
        raise UsageError("name the packages to uninstall", hint="`motorcade plugins` lists what is installed")
    protected = {"motorcade", "pip", "pluggy", "click"} & {p.lower() for p in packages}
    if protected:
        raise UsageError(f"refusing to uninstall {', '.join(sorted(protected))}: Motorcade needs it",
                         hint="uninstall plugins only; remove Motorcade itself with the tool that installed it")
    _run_pip(["uninstall", *(["--yes"] if yes else []), *packages], "uninstall")


def _run_pip(args: list[str], what: str) -> None:
    command = pip_command(*args)
    try:
        completed = subprocess.run(command)
    except OSError as exc:
        raise MotorcadeError(f"could not run pip ({exc})", hint=f"the command was: {' '.join(command)}") from None
    if completed.returncode != 0:
        raise MotorcadeError(f"pip {what} failed (exit code {completed.returncode})",
                             hint=f"see pip's output above; the command was: {' '.join(command)}")
