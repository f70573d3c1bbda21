"""Command line: ``python -m snapferry_emulator``.

Starts moto's server app behind the snapferry layer on a threaded werkzeug
server, prints ``AWS_ENDPOINT_URL=http://127.0.0.1:PORT`` once it is ready,
and (with ``--parent-pid``) exits by itself within about a second after the
parent process is gone, so test harnesses never leak emulators.

At start, before moto is imported, it checks that the installed moto is exactly
the version emulator/requirements.txt pins; if not, it exits 1 and says on
stderr how to fix the venv.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from .state import DEFAULT_QUOTAS

    p = argparse.ArgumentParser(prog="python -m snapferry_emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 = a free port (default)")
    p.add_argument("--port-file", help="also write the endpoint URL to this file once ready")
    p.add_argument("--parent-pid", type=int, help="exit when this process disappears")
    default_delay = float(os.environ.get("SNAPFERRY_EMULATOR_DELAY", "2.0"))
    p.add_argument("--delay", type=float, default=default_delay, help="seconds a snapshot/copy/restore stays in progress (default 2, env SNAPFERRY_EMULATOR_DELAY)")
    for name, value in DEFAULT_QUOTAS.items():
        p.add_argument(f"--quota-{name.replace('_', '-')}", dest=f"quota_{name}", type=int, default=value, help=f"quota {name} (default {value})")
    p.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before moto is imported, so a venv with another moto fails at once.
    from .pin import PinError, check

    try:
        check()
    except PinError as exc:
        print(f"snapferry emulator: {exc}", file=sys.stderr)
        return 1
    if args.delay < 0:
        print("--delay must be >= 0", file=sys.stderr)
        return 2
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .server import Emulator
    from .state import DEFAULT_QUOTAS

    quotas = {name: getattr(args, f"quota_{name}") for name in DEFAULT_QUOTAS}
    emulator = Emulator(host=args.host, port=args.port, delay=args.delay, quotas=quotas, verbose=args.verbose)
    emulator.start()
    url = emulator.url
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(url + "\n")
        os.replace(tmp, args.port_file)
    sys.stdout.write(f"AWS_ENDPOINT_URL={url}\n")
    sys.stdout.flush()
    # Exactly one line on stdout: anything printed later (moto prints a few
    # diagnostics) goes to stderr, so a harness that reads only the first
    # line and never drains (or closes) the pipe can't block or break us.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return emulator.wait(parent_pid=args.parent_pid)


if __name__ == "__main__":
    sys.exit(main())
