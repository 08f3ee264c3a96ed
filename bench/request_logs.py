#!/usr/bin/env python
"""Overhead of request logging on chat latency and throughput: the same chat requests through
two deployments of the bundled model, one with logging `full` (request, response and text
stored by the background writer) and one with logging `off` (nothing stored), in one server.

    .venv/bin/python bench/request_logs.py [--requests 24] [--concurrency 4] [--max-tokens 8] [--repeats 5]

Every repeat measures both deployments in a rotated order (interleaved): latency = median of
`--requests` sequential requests; throughput = requests/s of `--requests` requests sent by
`--concurrency` threads. Reported: medians per policy and the median of the per-repeat
ratios full ÷ off (latency: 1.0 means no overhead; throughput: 1.0 means no loss), plus the
rows the full deployment stored (they must equal the requests sent). Results:
bench/results/request-logs-<date>.json and .md. Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from common import results_stem, today, write_json, write_markdown
from servers import MODEL as CHAT
from servers import start_rixin

POLICIES = ("full", "off")


def ask(client, model: str, i: int, max_tokens: int) -> float:
    start = time.perf_counter()
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"Count to {i % 9 + 2}."}],
                                   temperature=0, max_tokens=max_tokens, metadata={"bench": "logging"})
    return time.perf_counter() - start


def latency(client, model: str, n: int, max_tokens: int) -> float:
    return statistics.median(ask(client, model, i, max_tokens) for i in range(n))


def throughput(client, model: str, n: int, threads: int, max_tokens: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: ask(client, model, i, max_tokens), range(n)))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--report-from", type=Path, default=None,
                        help="Re-render from the JSON lines a (possibly interrupted) run printed, one per repeat.")
    args = parser.parse_args()
    if args.report_from is not None:
        runs = [json.loads(line) for line in args.report_from.read_text().splitlines() if line.startswith("{")]
        args.report_from = str(args.report_from)
        return report(args, runs, {"full_rows": None, "off_rows": None, "sent_per_deployment": None})

    admin = "rx-admin-" + secrets.token_hex(8)
    data_dir = Path(tempfile.mkdtemp(prefix="rixin-bench-logging-"))
    server = start_rixin(data_dir, admin, data_dir / "server.log")
    url = server.url
    try:
        http = server.http()
        for policy in POLICIES:
            r = http.post("/v1/deployments", json={"name": f"bench-{policy}", "model": CHAT, "logging": policy})
            r.raise_for_status()
        client = openai.OpenAI(base_url=url + "/v1", api_key=admin, max_retries=0, timeout=120)
        for policy in POLICIES:  # warm-up
            latency(client, f"bench-{policy}", 3, args.max_tokens)
        runs = []
        for repeat in range(args.repeats):
            order = POLICIES if repeat % 2 == 0 else POLICIES[::-1]
            row = {"repeat": repeat, "order": list(order)}
            for policy in order:
                model = f"bench-{policy}"
                row[f"{policy}_latency_s"] = latency(client, model, args.requests, args.max_tokens)
                row[f"{policy}_rps"] = throughput(client, model, args.requests, args.concurrency, args.max_tokens)
            runs.append(row)
            print(json.dumps(row))
        stored = http.get("/v1/logs", params={"deployment": "bench-full", "limit": 1000}).json()["data"]
        stored_off = http.get("/v1/logs", params={"deployment": "bench-off", "limit": 1000}).json()["data"]
    finally:
        server.stop(grace=60)
    sent = (3 + 2 * args.requests * args.repeats)
    report(args, runs, {"full_rows": len(stored), "off_rows": len(stored_off), "sent_per_deployment": sent})


def report(args, runs: list[dict], rows: dict) -> None:
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    summary = {
        "latency_s": {p: med(f"{p}_latency_s") for p in POLICIES},
        "rps": {p: med(f"{p}_rps") for p in POLICIES},
        "latency_ratio_full_over_off": statistics.median(r["full_latency_s"] / r["off_latency_s"] for r in runs),
        "throughput_ratio_full_over_off": statistics.median(r["full_rps"] / r["off_rps"] for r in runs),
        "rows": rows,
    }
    date, stem = today(), results_stem("request-logs")
    command = "python bench/request_logs.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                    if v is not None)
    write_json(stem, {"command": command, "args": vars(args), "cpus": os.cpu_count(), "runs": runs,
                      "summary": summary}, indent=2)
    lines = [f"# Request logging overhead ({date})", "", f"`{command}` — one `rixin up`, two deployments of "
             f"`{CHAT}` (logging `full` vs `off`), {len(runs)} of {args.repeats} interleaved repeats done, "
             f"medians.", "",
             "| policy | latency (s, sequential) | throughput (req/s, "
             f"{args.concurrency} threads) |", "| --- | --- | --- |"]
    for p in POLICIES:
        lines.append(f"| {p} | {summary['latency_s'][p]:.4f} | {summary['rps'][p]:.2f} |")
    lines += ["", f"- latency ratio full ÷ off: **{summary['latency_ratio_full_over_off']:.3f}** (median of "
              "per-repeat ratios)",
              f"- throughput ratio full ÷ off: **{summary['throughput_ratio_full_over_off']:.3f}**",
              f"- rows stored: full {rows['full_rows']} of {rows['sent_per_deployment']} sent, off "
              f"{rows['off_rows']}" if rows["full_rows"] is not None else
              "- rows stored: not counted (re-rendered from the per-repeat lines of an interrupted run)"]
    write_markdown(stem, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
