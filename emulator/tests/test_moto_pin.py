"""The moto pin check: the emulator starts only on the moto emulator/requirements.txt pins."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import EMULATOR_DIR

if str(EMULATOR_DIR) not in sys.path:
    sys.path.insert(0, str(EMULATOR_DIR))
from snapferry_emulator import pin  # noqa: E402 - stdlib only, does not import moto

REQUIREMENTS = EMULATOR_DIR / "requirements.txt"


def _pin_in_file() -> str:
    """The moto pin, read here independently of the code under test."""
    found = re.findall(r"^moto\[server\]==(\S+)\s*$", REQUIREMENTS.read_text(), re.MULTILINE)
    assert len(found) == 1, found
    return found[0]


def _fake_moto(tmp_path: Path, version: str) -> Path:
    """A directory that, put first on PYTHONPATH, makes moto's metadata say ``version``."""
    dist = tmp_path / "fake" / f"moto-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: moto\nVersion: {version}\n")
    return dist.parent


def _start_args() -> list[str]:
    """Emulator flags; its parent is already gone, so should it start anyway it stops at once."""
    parent = subprocess.Popen([sys.executable, "-c", "pass"])
    parent.wait()
    return ["--port", "0", "--parent-pid", str(parent.pid)]


def _run(pythonpath: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=60)


def test_reads_the_pin_from_requirements_txt():
    assert pin.REQUIREMENTS == REQUIREMENTS
    assert pin.pinned_version() == _pin_in_file()


def test_passes_with_the_installed_moto():
    assert metadata.version("moto") == _pin_in_file()  # the venv under test is the pinned one
    assert pin.installed_version() == _pin_in_file()
    assert pin.check() == _pin_in_file()
    assert pin.mismatch(_pin_in_file()) is None


def test_fails_when_the_installed_version_differs(monkeypatch):
    pinned = _pin_in_file()
    monkeypatch.setattr(pin, "installed_version", lambda: "5.0.0")
    with pytest.raises(pin.PinError) as excinfo:
        pin.check()
    message = str(excinfo.value)
    assert f"moto 5.0.0 is installed, but {REQUIREMENTS} pins moto=={pinned}" in message
    assert "re-create the venv: rm -rf " in message and "scripts/emulator start" in message


def test_fails_when_moto_is_missing(monkeypatch):
    monkeypatch.setattr(pin, "installed_version", lambda: None)
    with pytest.raises(pin.PinError, match=r"(?s)moto is not installed, but .* pins moto==.*re-create the venv"):
        pin.check()


@pytest.mark.parametrize("near_miss", ["5.2.50", "5.2", "5.2.5.post1", "5.2.5rc1", "5.3.0"])
def test_only_the_exact_version_passes(tmp_path, near_miss):
    req = tmp_path / "requirements.txt"
    req.write_text("moto[server]==5.2.5\n")
    assert pin.mismatch("5.2.5", req) is None
    assert f"moto {near_miss} is installed" in pin.mismatch(near_miss, req)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("moto==1.2.3\n", "1.2.3"),
        ("# moto==9.9.9 is old\nboto3==1.0\nmoto[server] == 1.2.3  # pinned\n", "1.2.3"),
        ("Moto[server,all]==1.2.3 ; python_version >= '3.10'\n", "1.2.3"),
        ("motor==2.0\nmoto-ext==3.0\nmoto==1.2.3\n", "1.2.3"),
    ],
)
def test_parses_the_pin(tmp_path, text, expected):
    req = tmp_path / "requirements.txt"
    req.write_text(text)
    assert pin.pinned_version(req) == expected


@pytest.mark.parametrize(
    "text, error",
    [
        ("boto3==1.0\n", "has no moto pin"),
        ("moto[server]>=5.2\n", "must pin moto exactly"),
        ("moto[server]\n", "must pin moto exactly"),
    ],
)
def test_a_file_without_an_exact_pin_is_an_error(tmp_path, text, error):
    req = tmp_path / "requirements.txt"
    req.write_text(text)
    with pytest.raises(pin.PinError, match=error):
        pin.check(req)


def test_missing_requirements_file_is_said_clearly(tmp_path):
    missing = tmp_path / "requirements.txt"
    with pytest.raises(pin.PinError) as excinfo:
        pin.check(missing)
    message = str(excinfo.value)
    assert f"cannot check the moto version: {missing} does not exist" in message
    assert "emulator/requirements.txt" in message


def test_start_fails_at_once_with_another_moto(tmp_path):
    """End to end: another moto on the path -> exit 1, the message on stderr, moto never imported."""
    pinned = _pin_in_file()
    fake = _fake_moto(tmp_path, "4.0.0")
    probe = f"import sys; from snapferry_emulator.__main__ import main; rc = main({_start_args()!r}); print(rc, 'moto' in sys.modules)"
    out = _run([fake, EMULATOR_DIR], "-c", probe)
    assert out.stdout.split() == ["1", "False"], (out.stdout, out.stderr)
    assert f"snapferry emulator: moto 4.0.0 is installed, but {REQUIREMENTS} pins moto=={pinned}" in out.stderr
    assert "re-create the venv" in out.stderr

    # The real entry point: non-zero exit, no ready line.
    out = _run([fake, EMULATOR_DIR], "-m", "snapferry_emulator", *_start_args())
    assert out.returncode == 1 and out.stdout == "", (out.stdout, out.stderr)
    assert "moto 4.0.0 is installed" in out.stderr


def test_start_without_requirements_txt_says_so(tmp_path):
    """The package copied away from emulator/requirements.txt refuses to start and says why."""
    shutil.copytree(EMULATOR_DIR / "snapferry_emulator", tmp_path / "elsewhere" / "snapferry_emulator", ignore=shutil.ignore_patterns("__pycache__"))
    out = _run([tmp_path / "elsewhere"], "-m", "snapferry_emulator", *_start_args())
    assert out.returncode == 1 and out.stdout == "", (out.stdout, out.stderr)
    assert f"cannot check the moto version: {tmp_path / 'elsewhere' / 'requirements.txt'} does not exist" in out.stderr
