#!/usr/bin/env python3
"""Cold-start benchmark for custom-runtime (provided.*) Lambda bootstraps.

Each run starts one Lambda "bootstrap" process the way Lambda does (a clean
environment with the AWS_LAMBDA_* variables, AWS_REGION, credentials, and the
step's own variables) against a minimal Lambda Runtime API served by this script
on 127.0.0.1, and measures:

  init ms         spawn -> first ``GET /2018-06-01/runtime/invocation/next``
                  (the function's init: everything before it asks for work)
  first event ms  spawn -> ``POST /2018-06-01/runtime/invocation/<id>/response``
                  for one SQS event ``{"Records": []}``
  peak RSS MB     ``VmHWM`` from ``/proc/<pid>/status`` read just after the
                  response arrives and before the process is killed. This is the
                  RSS of the process that was spawned: when a command runs under
                  an emulator such as ``qemu-aarch64`` (qemu-user), it is qemu's
                  RSS, i.e. the guest's memory plus qemu's own (translated code
                  cache and so on), not what Lambda would report.

A ``POST .../<id>/error`` or ``POST .../init/error``, an exit before the response,
or a timeout is reported as a failed run with its body (or the output's tail).

Contenders run alternating (round r starts with contender r mod n, so with two
contenders the order is AB BA AB ...), so drifting machine load hits each alike;
compare contenders against each other, not against Lambda's absolute figures.

A contender is ``LABEL=COMMAND`` where COMMAND is shell-like and may begin with
``NAME=VALUE`` words, as in a shell, for variables of that contender only::

    bench/lambda_init.py --runs 10 \\
        --wrapper 'qemu-aarch64-static -L /usr/aarch64-linux-gnu' \\
        --env AWS_ENDPOINT_URL=http://127.0.0.1:4566 --env QUEUE_URL=http://127.0.0.1/q \\
        --contender 'old=/tmp/lambda-old-restore/bootstrap' \\
        --contender 'new=_HANDLER=restore /tmp/lambda-new/bootstrap'

The module is importable: :class:`Contender`, :class:`RuntimeApi`, :func:`run_once`,
:func:`run_alternating` and :func:`markdown_table` are the pieces the command line
puts together. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Iterable, Sequence

API_PREFIX = "/2018-06-01/runtime"
DEFAULT_EVENT = {"Records": []}
FUNCTION_ARN = "arn:aws:lambda:{region}:{account}:function:{name}"
DEFAULT_ACCOUNT = "123456789012"
ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# --------------------------------------------------------------------------- contenders


@dataclasses.dataclass(frozen=True)
class Contender:
    """One packaging to measure: a label, the argv that starts its bootstrap, and the
    variables it gets on top of the common Lambda environment."""

    label: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    wrapper: tuple[str, ...] = ()
    #: LAMBDA_TASK_ROOT and working directory; default the bootstrap's directory.
    cwd: str | None = None

    @property
    def argv(self) -> list[str]:
        return list(self.wrapper + self.command)

    @property
    def task_root(self) -> str:
        """LAMBDA_TASK_ROOT and working directory: ``cwd``, or the bootstrap's directory."""
        return self.cwd or os.path.dirname(os.path.abspath(self.command[0]))

    @classmethod
    def parse(cls, spec: str, wrapper: Sequence[str] = ()) -> "Contender":
        """``LABEL=[NAME=VALUE ...] COMMAND [ARG ...]`` (shell-quoted), with ``wrapper``
        (e.g. an emulator and its options) put in front of COMMAND."""
        label, sep, rest = spec.partition("=")
        if not sep or not label.strip():
            raise ValueError(f"contender {spec!r} is not LABEL=COMMAND")
        words = shlex.split(rest)
        env = []
        while words and ENV_WORD.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            env.append((name, value))
        if not words:
            raise ValueError(f"contender {label!r} has no command")
        return cls(label.strip(), tuple(words), tuple(env), tuple(wrapper))

    def describe(self) -> str:
        return " ".join([f"{k}={shlex.quote(v)}" for k, v in self.env] + [shlex.quote(w) for w in self.argv])


def lambda_environment(runtime_api: str, function_name: str, region: str, memory_mb: int,
                       task_root: str, extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """The environment a provided.* function starts with (the parts a bootstrap may
    read), plus ``extra``. The host's environment is not inherited."""
    stream = time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": task_root,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    env.update(extra)
    return env


# --------------------------------------------------------------------------- Runtime API


@dataclasses.dataclass
class Invocation:
    """What the Runtime API saw during one run; times are time.monotonic_ns()."""

    request_id: str
    event: bytes
    deadline_s: float
    first_next_ns: int | None = None
    done_ns: int | None = None
    outcome: str | None = None  # "response", "error" or "init/error"
    body: bytes = b""
    error_type: str | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    over: threading.Event = dataclasses.field(default_factory=threading.Event)


class RuntimeApi:
    """A minimal Lambda Runtime API on 127.0.0.1 for one run: it hands out one event
    and records when it was asked for it and when (and how) it was answered. Later
    ``/next`` requests are held open, as Lambda holds a function that has no more
    work, until the run is over.

    Use a new one (a new port) for every run: a request the previous, killed process
    sent just before it died may still be waiting to be served, and must not count
    as the next process's."""

    def __init__(self, event: bytes, timeout_s: float = 60.0, host: str = "127.0.0.1", port: int = 0,
                 function_arn: str = FUNCTION_ARN.format(region="us-east-1", account=DEFAULT_ACCOUNT, name="bench"),
                 on_first_next=None):
        self.function_arn = function_arn
        # Called (in the server thread) when the first /next arrives, after its time is taken
        # and before it is answered: the function is idle then, its init over.
        self.on_first_next = on_first_next
        self.invocation = Invocation(request_id=str(uuid.uuid4()), event=event,
                                     deadline_s=time.time() + timeout_s)
        self._lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def do_GET(self):
                api._get(self)

            def do_POST(self):
                api._post(self)

        self.server = _QuietServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> "RuntimeApi":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.invocation.over.set()
        self.server.shutdown()
        self.server.server_close()

    # -- request handling (server threads)

    def _get(self, req: http.server.BaseHTTPRequestHandler) -> None:
        now = time.monotonic_ns()
        if req.path != f"{API_PREFIX}/invocation/next":
            return self._reply(req, 404, b'{"errorMessage":"not found"}')
        inv = self.invocation
        with self._lock:
            first = inv.first_next_ns is None
            if first:
                inv.first_next_ns = now
        if not first:
            # No more work: hold the request (Lambda would freeze the function here).
            inv.over.wait()
            req.close_connection = True
            return
        if self.on_first_next is not None:
            self.on_first_next()
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(inv.deadline_s * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                                       f"Parent={uuid.uuid4().hex[:16]};Sampled=0",
        }
        self._reply(req, 200, inv.event, headers)

    def _post(self, req: http.server.BaseHTTPRequestHandler) -> None:
        now = time.monotonic_ns()
        body = _read_body(req)
        inv = self.invocation
        m = re.fullmatch(rf"{API_PREFIX}/(?:invocation/([^/]+)/(response|error)|init/(error))", req.path)
        if m is None or (m.group(1) is not None and m.group(1) != inv.request_id):
            return self._reply(req, 404, b'{"errorMessage":"unknown request"}')
        self._reply(req, 202, b'{"status":"OK"}')
        with self._lock:
            if inv.outcome is not None:
                return
            inv.done_ns = now
            inv.outcome = m.group(2) or "init/error"
            inv.body = body
            inv.error_type = req.headers.get("Lambda-Runtime-Function-Error-Type")
        inv.done.set()

    @staticmethod
    def _reply(req, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(body)
        req.wfile.flush()


class _QuietServer(http.server.ThreadingHTTPServer):
    """Killing a bootstrap resets its connections; that is expected, not an error."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _read_body(req: http.server.BaseHTTPRequestHandler) -> bytes:
    if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while req.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(out)
            out += req.rfile.read(size)
            req.rfile.readline()
    return req.rfile.read(int(req.headers.get("Content-Length") or 0))


# --------------------------------------------------------------------------- one run


@dataclasses.dataclass
class RunResult:
    label: str
    round: int
    ok: bool
    init_ms: float | None = None
    first_event_ms: float | None = None
    peak_rss_mb: float | None = None
    failure: str | None = None


def read_vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size (VmHWM, kB) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def run_once(contender: Contender, common_env: Iterable[tuple[str, str]] = (), *,
             round_no: int = 0, function_name: str = "bench", region: str = "us-east-1",
             account: str = DEFAULT_ACCOUNT, memory_mb: int = 256,
             event: bytes = json.dumps(DEFAULT_EVENT).encode(), timeout_s: float = 60.0,
             log_dir: str | None = None, check=None, on_first_next=None) -> RunResult:
    """Starts ``contender`` once against a fresh Runtime API, serves it one event and
    measures it (see the module doc). ``check(body)`` may refuse the response body (it
    returns why, or None); ``on_first_next()`` runs when the first /next arrives, before it
    is answered (it delays the event, so not in timed runs)."""
    arn = FUNCTION_ARN.format(region=region, account=account, name=function_name)
    with RuntimeApi(event, timeout_s, function_arn=arn, on_first_next=on_first_next) as api:
        return _run(api, contender, common_env, round_no, function_name, region, memory_mb, timeout_s, log_dir,
                    check)


def _run(api: RuntimeApi, contender: Contender, common_env: Iterable[tuple[str, str]], round_no: int,
         function_name: str, region: str, memory_mb: int, timeout_s: float, log_dir: str | None,
         check=None) -> RunResult:
    inv = api.invocation
    task_root = contender.task_root
    env = lambda_environment(api.address, function_name, region, memory_mb, task_root,
                             list(common_env) + list(contender.env))
    log = tempfile.NamedTemporaryFile(prefix=f"lambda-init-{contender.label}-", suffix=".log",
                                      dir=log_dir, delete=log_dir is None)
    result = RunResult(contender.label, round_no, ok=False)
    t0 = time.monotonic_ns()
    proc = subprocess.Popen(contender.argv, env=env, cwd=task_root, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    exited = timed_out = False
    hwm_kb = None
    try:
        deadline = time.monotonic() + timeout_s
        while not inv.done.wait(0.005):
            exited = proc.poll() is not None
            timed_out = time.monotonic() > deadline
            if exited or timed_out:
                break
        if proc.poll() is None:
            hwm_kb = read_vm_hwm_kb(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if inv.first_next_ns is not None:
        result.init_ms = (inv.first_next_ns - t0) / 1e6
    refused = check(inv.body) if check is not None and inv.outcome == "response" else None
    if inv.outcome == "response" and refused is None:
        result.ok = True
        result.first_event_ms = (inv.done_ns - t0) / 1e6
        result.peak_rss_mb = hwm_kb / 1024 if hwm_kb is not None else None
    else:
        if refused is not None:
            what = f"unexpected response ({refused}): {inv.body.decode(errors='replace')}"
        elif inv.outcome is not None:
            what = f"POST {inv.outcome} ({inv.error_type or 'no error type'}): {inv.body.decode(errors='replace')}"
        elif exited:
            what = f"exited with {proc.returncode} before responding"
        else:
            what = f"no response within {timeout_s:g} s" + (
                f" (it asked for the event after {result.init_ms:.0f} ms)" if result.init_ms is not None
                else " (it never asked for an event)")
        log.seek(0)
        tail = log.read()[-1500:].decode(errors="replace").strip()
        result.failure = what + (f"\n    output tail:\n    " + tail.replace("\n", "\n    ") if tail else "")
    log.close()
    return result


def run_alternating(contenders: Sequence[Contender], runs: int, warmup: int = 1,
                    progress=None, **kwargs) -> list[RunResult]:
    """``warmup`` discarded rounds, then ``runs`` measured rounds; round r runs the
    contenders starting from index r mod n."""
    results = []
    n = len(contenders)
    for r in range(-warmup, runs):
        for i in range(n):
            c = contenders[(r + i) % n]
            res = run_once(c, round_no=r, **kwargs)
            if progress:
                progress(res)
            if r >= 0:
                results.append(res)
    return results


# --------------------------------------------------------------------------- reporting


def _stats(values: list[float], fmt: str) -> list[str]:
    if not values:
        return ["-", "-", "-"]
    return [fmt.format(statistics.median(values)), fmt.format(min(values)), fmt.format(max(values))]


def markdown_table(contenders: Sequence[Contender], results: Sequence[RunResult]) -> str:
    head = ["contender", "ok/runs",
            "init ms median", "min", "max",
            "first event ms median", "min", "max",
            "peak RSS MB median", "min", "max"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for c in contenders:
        mine = [r for r in results if r.label == c.label]
        ok = [r for r in mine if r.ok]
        row = [c.label, f"{len(ok)}/{len(mine)}"]
        row += _stats([r.init_ms for r in ok], "{:.0f}")
        row += _stats([r.first_event_ms for r in ok], "{:.0f}")
        row += _stats([r.peak_rss_mb for r in ok if r.peak_rss_mb is not None], "{:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _pair(s: str) -> tuple[str, str]:
    if not ENV_WORD.match(s):
        raise argparse.ArgumentTypeError(f"{s!r} is not NAME=VALUE")
    k, _, v = s.partition("=")
    return k, v


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\nThe module is importable")[0],
        epilog="Example: %(prog)s --runs 10 --wrapper 'qemu-aarch64-static -L /usr/aarch64-linux-gnu' "
               "--env AWS_ENDPOINT_URL=http://127.0.0.1:4566 "
               "--contender 'old=/tmp/old/bootstrap' --contender 'new=_HANDLER=restore /tmp/new/bootstrap'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contender", "-c", action="append", required=True, metavar="LABEL=[NAME=VALUE ...] CMD",
                   help="a bootstrap to measure (repeat; shell-quoted; leading NAME=VALUE words are its own env)")
    p.add_argument("--env", "-e", action="append", type=_pair, default=[], metavar="NAME=VALUE",
                   help="variable for every contender (repeat), e.g. AWS_ENDPOINT_URL and the step's variables")
    p.add_argument("--wrapper", default="", metavar="CMD",
                   help="command put in front of every contender's, e.g. 'qemu-aarch64-static -L /usr/aarch64-linux-gnu'")
    p.add_argument("--runs", "-n", type=int, default=10, help="measured runs per contender (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="discarded rounds first, to warm caches (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a run may take (default 60)")
    p.add_argument("--function-name", default="snapferry-bench", help="AWS_LAMBDA_FUNCTION_NAME")
    p.add_argument("--memory", type=int, default=256, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 256)")
    p.add_argument("--region", default="us-east-1", help="AWS_REGION (default us-east-1)")
    p.add_argument("--event", default=json.dumps(DEFAULT_EVENT),
                   help='JSON of the one event served (default an empty SqsEvent, {"Records": []})')
    p.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE as JSON")
    p.add_argument("--log-dir", metavar="DIR", help="keep each run's output in DIR (default: discarded)")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-run progress on stderr")
    args = p.parse_args(argv)

    wrapper = shlex.split(args.wrapper)
    try:
        contenders = [Contender.parse(s, wrapper) for s in args.contender]
    except ValueError as e:
        p.error(str(e))
    labels = [c.label for c in contenders]
    if len(set(labels)) != len(labels):
        p.error(f"contender labels must differ: {labels}")
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)

    def progress(r: RunResult) -> None:
        if args.quiet:
            return
        tag = "warm-up" if r.round < 0 else f"run {r.round + 1}/{args.runs}"
        if r.ok:
            rss = f"{r.peak_rss_mb:.1f} MB" if r.peak_rss_mb is not None else "? MB"
            print(f"{tag} {r.label}: init {r.init_ms:.0f} ms, first event {r.first_event_ms:.0f} ms, "
                  f"peak RSS {rss}", file=sys.stderr, flush=True)
        else:
            print(f"{tag} {r.label}: FAILED: {r.failure}", file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    results = run_alternating(
        contenders, args.runs, warmup=args.warmup, progress=progress,
        common_env=args.env, function_name=args.function_name, region=args.region,
        memory_mb=args.memory, event=json.dumps(json.loads(args.event)).encode(),
        timeout_s=args.timeout, log_dir=args.log_dir)
    load_after = os.getloadavg()

    print(markdown_table(contenders, results))
    print()
    print(f"{args.runs} runs per contender after {args.warmup} warm-up round(s), alternating; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    for c in contenders:
        print(f"- {c.label}: `{c.describe()}`")
    failures = [r for r in results if not r.ok]
    if failures:
        print(f"\n{len(failures)} failed run(s):")
        for r in failures:
            print(f"- {r.label} run {r.round + 1}: {r.failure}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"contenders": [dataclasses.asdict(c) for c in contenders],
                       "runs": [dataclasses.asdict(r) for r in results],
                       "load_average": {"before": load_before, "after": load_after}}, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
