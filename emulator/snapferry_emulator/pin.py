"""The moto pin check: the layer patches moto's internals, so it runs only on
the moto version that ``emulator/requirements.txt`` pins.

That file is the one place the version is written; this module reads it
(it sits next to the package, in the repository's ``emulator/`` directory).
The installed version comes from the package metadata, so the check takes a
few milliseconds and does not import moto: a wrong venv fails at once.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"

# "moto==1.2.3", "moto[server] == 1.2.3  # comment", "moto[server]==1.2.3 ; python_version >= '3.10'"
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>.*)$")


class PinError(Exception):
    """The installed moto is not the pinned one, or the pin cannot be read."""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_version(requirements: Path = REQUIREMENTS) -> str:
    """The version ``requirements`` pins moto to (``moto==X`` or ``moto[extras]==X``)."""
    try:
        text = requirements.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PinError(
            f"cannot check the moto version: {requirements} does not exist. The moto pin lives in "
            f"emulator/requirements.txt, next to the snapferry_emulator package in the repository, "
            f"but this package was loaded from {Path(__file__).resolve().parent}, which has no "
            f"requirements.txt beside it (installed or copied elsewhere?). Run the emulator from "
            f"the repository with PYTHONPATH=<repo>/emulator, as scripts/emulator does."
        ) from None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        match = _REQUIREMENT.match(line)
        if not match or _normalize(match["name"]) != "moto":
            continue
        exact = re.fullmatch(r"==\s*([^\s,=<>!~*]+)", match["spec"].strip())
        if not exact:
            raise PinError(f"{requirements} must pin moto exactly (moto[server]==X.Y.Z), not {raw.strip()!r}")
        return exact[1]
    raise PinError(f"{requirements} has no moto pin (a line like moto[server]==X.Y.Z)")


def installed_version() -> str | None:
    """The installed moto's version (package metadata), or None when moto is not installed."""
    try:
        return metadata.version("moto")
    except metadata.PackageNotFoundError:
        return None


def fix(requirements: Path = REQUIREMENTS) -> str:
    """How to get the pinned moto.

    ensure_venv (scripts/lib.sh, run by `scripts/emulator start` and scripts/test)
    creates a missing .venv and installs the pinned requirements, but reinstalls
    into an existing .venv only when the requirement files changed: a venv that
    drifted has to be removed first.
    """
    root = requirements.resolve().parent.parent
    venv = root / ".venv"
    text = (
        f"re-create the venv: rm -rf {venv} && {root}/scripts/emulator start\n"
        f"(scripts/emulator start and scripts/test create a missing .venv and install the "
        f"pinned emulator/requirements.txt into it)"
    )
    if Path(sys.prefix).resolve() != venv.resolve():
        text += f"\nthen run the emulator with {venv}/bin/python, not {sys.executable}"
    return text


def mismatch(installed: str | None, requirements: Path = REQUIREMENTS) -> str | None:
    """The error message when ``installed`` is not the pinned version, else None."""
    pinned = pinned_version(requirements)
    if installed is None:
        return f"moto is not installed, but {requirements} pins moto=={pinned}.\nFix: {fix(requirements)}"
    if installed != pinned:
        return (
            f"moto {installed} is installed, but {requirements} pins moto=={pinned} (the emulator "
            f"patches moto's internals and runs only on the pinned version).\nFix: {fix(requirements)}"
        )
    return None


def check(requirements: Path = REQUIREMENTS) -> str:
    """Return the installed moto version if it is exactly the pinned one; else raise PinError."""
    installed = installed_version()
    message = mismatch(installed, requirements)
    if message is not None:
        raise PinError(message)
    assert installed is not None
    return installed
