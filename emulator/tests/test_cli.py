"""The entry point: ready line, --port-file, --parent-pid self-exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import requests
from conftest import EMULATOR_DIR, wait_for


def _env():
    return dict(os.environ, PYTHONPATH=str(EMULATOR_DIR))


def test_ready_line_port_file_and_parent_exit(tmp_path):
    port_file = tmp_path / "endpoint"
    # A parent that we control: the emulator must exit after it disappears.
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapferry_emulator", "--port", "0", "--port-file", str(port_file), "--parent-pid", str(parent.pid), "--delay", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:")
        url = line.strip().split("=", 1)[1]
        assert port_file.read_text().strip() == url
        assert requests.get(f"{url}/_snapferry/health", timeout=5).json() == {"ok": True}
        assert requests.get(f"{url}/_snapferry/config", timeout=5).json()["delay_seconds"] == 0.1
        parent.kill()
        parent.wait()
        started = time.monotonic()
        wait_for(lambda: proc.poll() is not None, timeout=5, what="emulator exit after parent died")
        assert time.monotonic() - started < 3
    finally:
        parent.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_env_delay_and_quota_flags():
    env = _env()
    env["SNAPFERRY_EMULATOR_DELAY"] = "0.7"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapferry_emulator", "--port", "0", "--quota-ebs-copies", "7", "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip().split("=", 1)[1]
        cfg = requests.get(f"{url}/_snapferry/config", timeout=5).json()
        assert cfg["delay_seconds"] == 0.7 and cfg["quotas"]["ebs_copies"] == 7
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_help():
    out = subprocess.run([sys.executable, "-m", "snapferry_emulator", "--help"], capture_output=True, text=True, env=_env(), timeout=30)
    assert out.returncode == 0 and "--parent-pid" in out.stdout
