"""The worker under load, on loopback only. Targets (issue 16):

- 2,000 calls at concurrency 50, direct and routed through a second environment: 0 errors
  (p50, p99 and calls per second reported);
- 100 slow-loris connections (partial headers, held open): a normal call still served within 100 ms;
- SIGTERM during 20 in-flight 2-second calls: all 20 complete.

Workers are real processes (`python -m flyte_infra.runtime.worker`) serving tests/fixtures/relay.py.
`--pythonpath DIR` runs the workers from another checkout (e.g. the previous worker, for comparison).

    python benchmarks/bench_worker.py [--calls 2000] [--concurrency 50] [--pythonpath DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODULE = str(ROOT / "tests" / "fixtures" / "relay.py")
LORIS = 100
LORIS_TARGET_MS = 100.0
DRAINED_CALLS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(environment: str, port: int, pythonpath: str, **variables: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "flyte_infra.runtime.worker", "--module", MODULE, "--env", environment]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": pythonpath, **variables}
    log = tempfile.TemporaryFile()  # noqa: SIM115  # the process keeps it; closed with the interpreter
    # `python -m` puts the working directory first on sys.path: run from the checkout under test
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=pythonpath)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"worker '{environment}' did not come up on port {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def call(client: httpx.Client, port: int, task: str, args: dict[str, Any]) -> tuple[bool, float]:
    """(succeeded, seconds) of one call; a 503 is retried as the workers' own client retries it."""
    started = time.perf_counter()
    for _ in range(50):
        try:
            response = client.post(f"http://127.0.0.1:{port}/tasks/{task}", json={"args": args})
        except httpx.TransportError:
            return False, time.perf_counter() - started
        if response.status_code != 503:
            return response.status_code == 200, time.perf_counter() - started
        time.sleep(float(response.headers.get("retry-after", "0.05")) / 20)
    return False, time.perf_counter() - started


def load(port: int, task: str, args: dict[str, Any], calls: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2
    )
    with (
        httpx.Client(limits=limits, timeout=60, trust_env=False) as client,
        concurrent.futures.ThreadPoolExecutor(concurrency) as pool,
    ):
        started = time.perf_counter()
        outcomes = list(pool.map(lambda _: call(client, port, task, args), range(calls)))
        elapsed = time.perf_counter() - started
    latencies = sorted(seconds for _, seconds in outcomes)
    return {
        "calls": calls,
        "errors": sum(1 for ok, _ in outcomes if not ok),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "calls_per_s": calls / elapsed,
    }


def slow_loris(port: int) -> dict[str, float]:
    """A normal call's latency while LORIS connections hold partial headers open."""
    held = []
    try:
        for _ in range(LORIS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"POST /tasks/square HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(connection)
        time.sleep(0.5)
        with httpx.Client(trust_env=False, timeout=10) as client:
            latencies = [call(client, port, "square", {"x": 3}) for _ in range(5)]
    finally:
        for connection in held:
            connection.close()
    return {
        "held": LORIS,
        "errors": sum(1 for ok, _ in latencies if not ok),
        "worst_ms": 1000 * max(seconds for _, seconds in latencies),
    }


def drain(pythonpath: str) -> dict[str, float]:
    """DRAINED_CALLS 2-second calls in flight, then SIGTERM: how many complete."""
    port = free_port()
    process = start("leaf", port, pythonpath)
    with (
        httpx.Client(trust_env=False, timeout=30, limits=httpx.Limits(max_connections=50)) as client,
        concurrent.futures.ThreadPoolExecutor(DRAINED_CALLS) as pool,
    ):
        calls = [pool.submit(call, client, port, "nap", {"seconds": 2}) for _ in range(DRAINED_CALLS)]
        for _ in range(100):  # until all are running
            answer = client.post(f"http://127.0.0.1:{port}/tasks/naps", json={"args": {}})
            if answer.status_code == 200 and answer.json()["result"]["now"] == DRAINED_CALLS:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        completed = sum(1 for future in calls if future.result()[0])
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    return {"in_flight": DRAINED_CALLS, "completed": completed, "exit_code": code}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--pythonpath", default=str(ROOT), help="the checkout whose worker to run")
    args = parser.parse_args()
    calls, concurrency = min(args.calls, 100_000), min(args.concurrency, 500)  # bounded
    leaf_port, relay_port = free_port(), free_port()
    leaf = start("leaf", leaf_port, args.pythonpath)
    relay = start(
        "relay", relay_port, args.pythonpath, FLYTE_INFRA_ENDPOINT_LEAF=f"http://127.0.0.1:{leaf_port}"
    )
    try:
        results: dict[str, dict[str, float]] = {
            "direct": load(leaf_port, "square", {"x": 7}, calls, concurrency),
            # relay.sum_squares(n=1) makes one call to leaf.square from relay's worker
            "routed": load(relay_port, "sum_squares", {"n": 1}, calls, concurrency),
            "slow_loris": slow_loris(leaf_port),
        }
    finally:
        stop(relay)
        stop(leaf)
    results["sigterm"] = drain(args.pythonpath)
    print(json.dumps(results, indent=2))
    ok = (
        results["direct"]["errors"] == results["routed"]["errors"] == 0
        and results["slow_loris"]["errors"] == 0
        and results["slow_loris"]["worst_ms"] <= LORIS_TARGET_MS
        and results["sigterm"]["completed"] == DRAINED_CALLS
    )
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
