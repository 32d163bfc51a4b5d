"""`dfer serve` under load: N concurrent clients on loopback for a bounded time -> latency, throughput, errors.

    python bench/serve_load.py                                   # runs/demo (make demo), 4 clients, 30 s
    python bench/serve_load.py --model RUN --clients 8 --seconds 60 --workers 2
    python bench/serve_load.py --url http://127.0.0.1:8000/      # a server you started yourself

What is measured:
- The server is `python -m dfer serve` in its own process on a free 127.0.0.1 port, with `--queue` = clients by
  default, so a correct server never needs to refuse (any 503 is an error here).
  Only loopback addresses are accepted for `--url`: this bench sends traffic nowhere else.
- After one warm-up request per worker (first-call costs: thread pools, allocator), each client is a thread with
  its own HTTP connection that uploads the bundled CREMA-D clips in turn, one request after another, until
  `--seconds` have passed; a request started before then is waited for.
- latency = client-side, from sending the upload to having the JSON (so it includes the wait in the server's
  queue); throughput = successful requests / (last answer - first request); errors = anything but a 200 with a
  prediction (status, timeout, refused connection). The server's own per-request split (queue, decode, predict)
  comes from the `timing` of its answers; decode runs on its own thread, overlapping the previous request's predict.
- `other_load_cores`: CPU cores that processes other than this bench and its server kept busy meanwhile
  (Linux /proc): on a shared machine, a figure taken while other work ran is slower than the server is.

The last line of stdout is one JSON object with every figure; the exit code is 1 when there was any error.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from machine import machine_busy_s  # bench/machine.py: shared machine facts

from dfer.serve import DEFAULT_WORKERS

REPO = Path(__file__).resolve().parents[1]
CLIPS = sorted((REPO / "samples" / "cremad" / "VideoFlash").glob("*.flv"))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "runs" / "demo", help="run folder to serve (runs/demo)")
    parser.add_argument("--url", help="load an already running server on loopback instead of starting one")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long new requests are sent (30)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"the server's prediction threads ({DEFAULT_WORKERS}: `dfer serve`'s default here)")
    parser.add_argument("--queue", type=int, help="the server's queue (default: --clients, so none is refused)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take (120)")
    args = parser.parse_args(argv)

    server = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            parser.error(f"--url must be on loopback ({', '.join(sorted(LOOPBACK))}), not {args.url}")
        url = args.url.rstrip("/")
    else:
        if not (args.model / "config.json").exists():
            parser.error(f"{args.model} is not a run: `make demo` makes runs/demo, or pass --model RUN")
        server, url = start_server(args.model, args.workers, args.clients if args.queue is None else args.queue)
    try:
        health = wait_until_up(url, server)
        print(f"serving {health['run']} ({health['modalities']}, {health['device']}, workers {health['workers']}, "
              f"capacity {health['capacity']}); {args.clients} clients for {args.seconds:g} s", file=sys.stderr)
        with httpx.Client(timeout=args.timeout) as client:  # warm-up, not measured
            for i in range(health["workers"]):
                assert send(client, url, CLIPS[i % len(CLIPS)])[0] == 200, "warm-up request failed"
        ours = [os.getpid()] + ([server.pid] if server else [])
        busy_before, ours_before = machine_busy_s(), process_cpu_seconds(ours)
        records, elapsed = load(url, args.clients, args.seconds, args.timeout)
        other = (machine_busy_s() - busy_before - (process_cpu_seconds(ours) - ours_before)) / elapsed
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            Path(server.log_path).unlink(missing_ok=True)  # its tail is in the error when the server failed
    figures = summarise(records, elapsed, args, health, other)
    print_table(figures)
    print(json.dumps(figures))
    return 1 if figures["errors"] else 0


def start_server(model: Path, workers: int, queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="dfer-serve-", suffix=".log", delete=False)
    command = [sys.executable, "-m", "dfer", "serve", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--queue", str(queue)]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    server.log_path = log.name
    return server, f"http://127.0.0.1:{port}"


def wait_until_up(url: str, server: subprocess.Popen | None, limit: float = 300) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}):\n{Path(server.log_path).read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=5).json()
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url}/health in {limit:g} s")


def send(client: httpx.Client, url: str, clip: Path) -> tuple[int | str, float, dict | None]:
    """(status or error name, seconds, the server's timing) of one upload."""
    started = time.perf_counter()
    try:
        response = client.post(f"{url}/predict", files={"file": (clip.name, clip.read_bytes(), "video/x-flv")})
        body = response.json() if response.status_code == 200 else None
        status = response.status_code if body is None or "probs" in body else "no prediction"
        return status, time.perf_counter() - started, body and body["timing"]
    except httpx.HTTPError as error:
        return type(error).__name__, time.perf_counter() - started, None


def load(url: str, clients: int, seconds: float, timeout: float) -> tuple[list[tuple], float]:
    records: list[tuple] = []  # (status, latency s, server timing), appended by every client thread
    lock = threading.Lock()
    start = time.perf_counter()
    stop = start + seconds

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=timeout) as client:
            turn = index  # clients start on different clips
            while time.perf_counter() < stop:
                record = send(client, url, CLIPS[turn % len(CLIPS)])
                turn += 1
                with lock:
                    records.append(record)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records, time.perf_counter() - start


def summarise(records: list[tuple], elapsed: float, args, health: dict, other_load: float) -> dict:
    ok = [latency for status, latency, _ in records if status == 200]
    timings = [timing for status, _, timing in records if status == 200]
    failures: dict[str, int] = {}
    for status, _, _ in records:
        if status != 200:
            failures[str(status)] = failures.get(str(status), 0) + 1
    ms = lambda values, q: round(float(np.percentile(values, q)) * 1000, 1) if values else None  # noqa: E731
    server_ms = lambda step: round(float(np.mean([t[step] for t in timings])) * 1000, 1) if timings else None  # noqa
    return {
        "bench": "serve_load",
        "run": health["run"], "device": health["device"], "workers": health["workers"],
        "capacity": health["capacity"], "clients": args.clients, "seconds": round(elapsed, 2),
        "requests": len(records), "ok": len(ok), "errors": len(records) - len(ok), "error_kinds": failures,
        "p50_ms": ms(ok, 50), "p95_ms": ms(ok, 95), "max_ms": ms(ok, 100),
        "throughput_rps": round(len(ok) / elapsed, 3),
        "server_queue_ms_mean": server_ms("queue"), "server_decode_ms_mean": server_ms("decode"),
        "server_predict_ms_mean": server_ms("predict"),
        "cpu_count": os.cpu_count(),
        "other_load_cores": None if np.isnan(other_load) else round(other_load, 2),
    }


def print_table(figures: dict) -> None:
    rows = [("requests (ok / errors)", f"{figures['requests']} ({figures['ok']} / {figures['errors']})"),
            ("latency p50 / p95 / max", f"{figures['p50_ms']} / {figures['p95_ms']} / {figures['max_ms']} ms"),
            ("throughput", f"{figures['throughput_rps']} requests/s"),
            ("server: queue / decode / predict (mean)",
             f"{figures['server_queue_ms_mean']} / {figures['server_decode_ms_mean']} / "
             f"{figures['server_predict_ms_mean']} ms"),
            ("other load", f"{figures['other_load_cores']} of {figures['cpu_count']} cores")]
    if figures["error_kinds"]:
        rows.append(("error kinds", json.dumps(figures["error_kinds"])))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")




def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (their threads included); NaN where /proc is missing."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


if __name__ == "__main__":
    sys.exit(main())
