"""What rate limiting + metering add to a chat request in the gateway (issue 12), in µs.

    PYTHONPATH=src .venv/bin/python bench/metering.py [--requests 2000] [--concurrency 1 16] [--repeats 5]

The gateway middleware (api/gate.py) runs in-process in front of a stub route that answers a
chat.completion with its `usage` at once (no engine: only the gateway's own work is timed), on
a fresh SQLite store. Each repeat times every request twice, interleaved: once on the metered
path (/v1/chat/completions: budget check, rate-limit admission, x-ratelimit-* headers, the
usage row committed before the answer) and once on an unmetered path with the same body and
answer (the peer: authentication, body checks and all the rest of the gate alike). The overhead
is the difference of the per-request percentiles. With --concurrency 16, 16 clients are in
flight at once and the meter's group commit shares transactions between them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, load_avg, machine, median, results_stem, write_json, write_markdown  # noqa: E402

ANSWER = json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}).encode()
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


async def stub(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": ANSWER})


async def one(gate, path: str, key: str) -> float:
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "state": {},
             "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json"),
                         (b"content-length", str(len(BODY)).encode())]}
    sent = [{"type": "http.request", "body": BODY, "more_body": False}]
    status = []

    async def receive():
        return sent.pop() if sent else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    start = time.perf_counter()
    await gate(scope, receive, send)
    took = time.perf_counter() - start
    assert status == [200], status
    return took


async def run(gate, key: str, requests: int, concurrency: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"metered": [], "plain": []}
    for i in range(0, requests, concurrency):
        for side, path in (("metered", "/v1/chat/completions"), ("plain", "/v1/unmetered"))[:: 1 if i % 2 else -1]:
            times[side] += await asyncio.gather(*(one(gate, path, key) for _ in range(concurrency)))
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from rixin.api.gate import Gate
    from rixin.config import Settings
    from rixin.platform import Platform

    platform = Platform.open(Settings(data_dir=Path(tempfile.mkdtemp(prefix="rixin-bench-"))))
    key = platform.tenancy.create_key("bench").key
    gate = Gate(stub, platform, limit=1 << 20, upload_limit=1 << 20, read_timeout_s=30)
    pid = platform.tenancy.get_project("bench").id
    platform.controls.limiter.set_limit(pid, "m", 10**9, 10**12)  # never refuses: time the bookkeeping
    rows = []
    for concurrency in args.concurrency:
        overhead = {"p50": [], "p99": []}
        for _ in range(args.repeats):
            times = asyncio.run(run(gate, key, args.requests, concurrency))
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                overhead[name].append((percentile(times["metered"], q) - percentile(times["plain"], q)) * 1e6)
            plain_p50 = percentile(times["plain"], 0.5) * 1e6
        rows.append({"concurrency": concurrency, "overhead_p50_us": median(overhead["p50"]),
                     "overhead_p99_us": median(overhead["p99"]), "plain_p50_us": plain_p50,
                     "repeats": overhead})
    platform.close()
    result = {"command": command("metering.py"), "machine": machine(), "load_avg": load_avg(),
              "requests": args.requests, "rows": rows}
    stem = results_stem("metering")
    write_json(stem, result)
    table = ["| clients in flight | overhead p50 (µs) | overhead p99 (µs) | gate alone p50 (µs) |", "|---|---|---|---|"]
    table += [f"| {r['concurrency']} | {r['overhead_p50_us']:.0f} | {r['overhead_p99_us']:.0f} | "
              f"{r['plain_p50_us']:.0f} |" for r in rows]
    write_markdown(stem, "\n".join([f"`{result['command']}` (load {result['load_avg']:.2f})", "", *table]))
    print("\n".join(table))


if __name__ == "__main__":
    main()
