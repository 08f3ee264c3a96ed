#!/usr/bin/env python
"""Serving benchmark: rixin (`rixin up`) against `python -m llama_cpp.server`, same GGUF.

    .venv/bin/python bench/serve.py [--repeats 5] [--requests 64] [--prompt-tokens 128]
        [--output-tokens 128] [--concurrency 1,2,4,8] [--rates 0.5,1,2] [--threads 2] [--requantize]
        [--no-q8-peer]

The servers run side by side with the same thread count and context: rixin on the bundled
GGUF (`--requantize`: from its Q8_0 copy, docs/decisions/0006), the peer on the same file,
and a second peer on that Q8_0 copy (so the table separates what batching wins from what the
weight format wins). The peers are bench/llama_server.py: llama_cpp.server unchanged but
for plain CPU weight buffers, as rixin loads them. The client (httpx, streaming chat
completions over HTTP, the same code for all) drives one server at a time, rotating which
goes first every workload and repeat. Workloads in the style of
vLLM's benchmark_serving: (a) a single stream; (b) `--requests` requests at each
concurrency; (c) Poisson arrivals at each rate. Prompts are distinct per request (seeded
random words, ~`--prompt-tokens` tokens), greedy, `max_tokens=--output-tokens`.
Output tokens are the `usage` of the stream's last event (`stream_options.include_usage`),
or the number of content deltas from a server that sends no usage (one delta per token).
Results: bench/results/serve-<date>.json, .md and .png. Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import command, load_avg, machine, median, pair_ratios, results_stem, start_plot, today, versions, write_json
from common import write_markdown
from servers import ROOT, Server, start_llama_server, start_rixin, stop_all

LIMIT_TOK_S = 135.0  # DESIGN.md: llama.cpp single-stream decode of this model ~120-150 tok/s
OURS, PEER, PEER_Q8 = "rixin", "llama_cpp.server", "llama_cpp.server q8_0"
WORDS = ("river stone light market engine garden winter paper signal harbor music window forest "
         "copper lantern valley bridge orbit silver thunder meadow candle planet ribbon castle").split()
PACKAGES = ("rixin", "llama_cpp_python", "ray", "fastapi", "uvicorn", "httpx")


# ---------------------------------------------------------------------------- the servers


def start_servers(gguf: str, q8_copy: str | None, threads: int, ctx: int, workdir: Path,
                  requantize: bool) -> list[Server]:
    """rixin and the peers side by side (same threads and context), all healthy on return."""
    ours = start_rixin(workdir / "rixin", "rx-admin-" + secrets.token_hex(8), workdir / "rixin.log", {
        "RIXIN_ENGINE_THREADS": str(threads), "RIXIN_CHAT_CONTEXT": str(ctx), "RIXIN_ENGINE_QUEUE_SIZE": "256",
        "RIXIN_ENGINE_REQUANTIZE": str(requantize).lower()}, name=OURS, wait=False)
    servers = [ours, start_llama_server(PEER, gguf, threads, ctx, workdir / "peer.log")]
    if q8_copy:
        servers.append(start_llama_server(PEER_Q8, q8_copy, threads, ctx, workdir / "peer-q8.log"))
    ours.wait("/health")
    for server in servers[1:]:
        server.wait("/v1/models")
    return servers


# ---------------------------------------------------------------------------- the client


def make_prompts(n: int, prompt_tokens: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    # ~1.3 tokens per word for this vocabulary (measured with the GGUF's tokenizer).
    words = int(prompt_tokens / 1.3)
    return ["Continue this story for a long while: " + " ".join(rng.choice(WORDS) for _ in range(words))
            for _ in range(n)]


async def one_request(client: httpx.AsyncClient, server: Server, prompt: str, max_tokens: int) -> dict:
    body = {"model": server.model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}], "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft, tokens, usage, error = None, 0, None, None
    try:
        async with client.stream("POST", server.url + "/v1/chat/completions", json=body,
                                 headers={"Authorization": f"Bearer {server.key}"}) as r:
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}", "latency": time.perf_counter() - start}
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    error = str(event["error"])
                    continue
                if event.get("usage"):
                    usage = event["usage"].get("completion_tokens")
                for choice in event.get("choices", []):
                    if choice.get("delta", {}).get("content"):
                        tokens += 1
                        ttft = ttft if ttft is not None else time.perf_counter() - start
    except httpx.HTTPError as e:
        error = repr(e)
    # A server may send several tokens in one delta when the reader falls behind (rixin
    # does): the usage count is the truth where the server sends it, deltas otherwise.
    return {"ttft": ttft, "tokens": usage if usage is not None else tokens, "deltas": tokens,
            "latency": time.perf_counter() - start, "error": error}


async def workload(server: Server, prompts: list[str], max_tokens: int, concurrency: int | None,
                   rate: float | None, seed: int) -> dict:
    """Run all prompts with at most `concurrency` in flight, or arriving at Poisson `rate`/s."""
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=len(prompts) + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(900), limits=limits) as client:
        gate = asyncio.Semaphore(concurrency or len(prompts))

        async def run(prompt: str, delay: float) -> dict:
            await asyncio.sleep(delay)
            async with gate:
                return await one_request(client, server, prompt, max_tokens)

        delays, t = [], 0.0
        for _ in prompts:
            delays.append(t)
            if rate:
                t += rng.expovariate(rate)
        load0, cpu0, start = load_avg(), server.cpu_seconds(), time.perf_counter()
        results = await asyncio.gather(*(run(p, d) for p, d in zip(prompts, delays)))
        wall, cpu = time.perf_counter() - start, server.cpu_seconds() - cpu0
    return summarise_run(results, wall, [load0, load_avg()], cpu)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summarise_run(results: list[dict], wall: float, load: list[float], cpu: float) -> dict:
    ok = [r for r in results if not r["error"] and r["tokens"]]
    tpot = [(r["latency"] - r["ttft"]) / (r["tokens"] - 1) for r in ok if r["tokens"] > 1]
    ttft = [r["ttft"] for r in ok]
    return {"wall_s": wall, "output_tok_s": sum(r["tokens"] for r in ok) / wall, "req_s": len(ok) / wall,
            "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99), "tpot_p50": pct(tpot, 0.5),
            "tpot_p99": pct(tpot, 0.99), "errors": len(results) - len(ok),
            "mean_output_tokens": statistics.mean([r["tokens"] for r in ok]) if ok else 0, "load1": load,
            "cpu_ms_per_token": 1e3 * cpu / max(1, sum(r["tokens"] for r in ok))}


# ---------------------------------------------------------------------------- the run


def plan(args) -> list[tuple[str, int, int | None, float | None]]:
    """(label, n requests, concurrency, Poisson rate) of every workload."""
    out = [("single", max(1, args.single_requests), 1, None)]
    out += [(f"conc{c}", args.requests, c, None) for c in args.concurrency]
    out += [(f"poisson{r:g}", args.requests, None, r) for r in args.rates]
    return out


def medians(runs: list[dict]) -> dict:
    keys = ("output_tok_s", "req_s", "ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "mean_output_tokens",
            "cpu_ms_per_token")
    out = {k: statistics.median([r[k] for r in runs if r[k] is not None] or [float("nan")]) for k in keys}
    out["errors"] = sum(r["errors"] for r in runs)
    return out


def summarise(raw: dict) -> dict:
    summary = {}
    for label, by_server in raw.items():
        ours = by_server[OURS]
        entry = {name: medians(runs) for name, runs in by_server.items()}
        for peer, key in ((PEER, "ratio_tok_s"), (PEER_Q8, "ratio_tok_s_q8")):
            if peer in by_server:  # per-repeat ratios (same repeat, same prompts), then the median
                entry[key] = median(pair_ratios(ours, by_server[peer], "output_tok_s"))
        entry["ours_over_limit"] = entry[OURS]["output_tok_s"] / LIMIT_TOK_S
        summary[label] = entry
    return summary


def _cells(m: dict) -> str:
    return (f"{m['output_tok_s']:.1f} | {m['req_s']:.2f} | {m['ttft_p50']:.2f}/{m['ttft_p99']:.2f} | "
            f"{m['tpot_p50'] * 1e3:.0f}/{m['tpot_p99'] * 1e3:.0f} | {m['cpu_ms_per_token']:.0f} | {m['errors']}")


def write_report(result: dict, stem: Path) -> None:
    write_json(stem, result)
    summary = result["summary"]
    names = [n for n in (OURS, PEER, PEER_Q8) if any(n in s for s in summary.values())]
    has_q8 = PEER_Q8 in names
    lines = [f"# serve.py — {result['date']} ({result['repeats_done']} repeats)", "", f"`{result['command']}`", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['nproc']} cores, "
             f"{result['machine']['memory']}; threads {result['args']['threads']}; load average (1 min) "
             f"during runs: {result['load1_min']:.1f}-{result['load1_max']:.1f}.", "",
             "Ratios: median over repeats of ours ÷ peer output tokens/s in the same repeat. "
             f"Limit: {LIMIT_TOK_S:.0f} tok/s (DESIGN.md, single-stream llama.cpp decode).", "",
             "| workload | ours ÷ peer | " + ("ours ÷ peer on Q8_0 | " if has_q8 else "") + "ours ÷ limit |",
             "|---|---|" + ("---|" if has_q8 else "") + "---|"]
    for label, s in summary.items():
        q8 = f" {s['ratio_tok_s_q8']:.2f} |" if has_q8 and s.get("ratio_tok_s_q8") is not None else (" |" if has_q8 else "")
        lines.append(f"| {label} | {s['ratio_tok_s']:.2f} |{q8} {s['ours_over_limit']:.2f} |")
    lines += ["", "| workload | server | output tok/s | req/s | TTFT p50/p99 s | TPOT p50/p99 ms "
              "| CPU ms per token | errors |", "|---|---|---|---|---|---|---|---|"]
    for label, s in summary.items():
        for name in names:
            if name in s:
                lines.append(f"| {label} | {name} | {_cells(s[name])} |")
    write_markdown(stem, "\n".join(lines) + "\n")
    plt = start_plot()
    labels = list(summary)
    width = 0.8 / len(names)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(labels))]
        ax1.bar(xs, [summary[k][name]["output_tok_s"] for k in labels], width, label=name)
        ax2.bar(xs, [summary[k][name]["ttft_p99"] for k in labels], width, label=name)
    for ax, title in ((ax1, "output tokens/s (median)"), (ax2, "TTFT p99 s (median)")):
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)


def report(args, gguf: str, q8_copy: str | None, raw: dict, loads: list[float], stem: Path, repeats_done: int) -> None:
    result = {"date": today(), "command": command("serve.py"),
              "args": vars(args), "repeats_done": repeats_done, "machine": machine(), "versions": versions(PACKAGES),
              "gguf": str(gguf), "q8_copy": q8_copy, "limit_tok_s": LIMIT_TOK_S, "load1_min": min(loads),
              "load1_max": max(loads), "summary": summarise(raw), "raw": raw}
    write_report(result, stem)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--single-requests", type=int, default=1, help="sequential requests in workload (a)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--output-tokens", type=int, default=128)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8])
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 1.0, 2.0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--requantize", action="store_true", help="rixin serves the GGUF from its Q8_0 copy "
                    "(engine_requantize; the default before 2026-11-30's second run)")
    ap.add_argument("--no-q8-peer", action="store_true", help="skip the peer on the Q8_0 copy")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from rixin.engines.llama_cpp import serving_weights
    from rixin.models.registry import bundled_models

    # SIGTERM (a killed bench, a CI timeout) must still stop the servers: the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    gguf = next(m.path for m in bundled_models() if m.engine == "llama.cpp")
    workdir = Path(tempfile.mkdtemp(prefix="rixin-bench-serve-"))
    # The same copy rixin makes for itself (same function; the cache key is the source file).
    q8_copy = None if args.no_q8_peer else serving_weights(str(gguf), str(workdir / "q8"))
    raw: dict[str, dict[str, list]] = {}
    loads: list[float] = []
    stem = results_stem("serve", args.tag)
    try:
        servers = start_servers(str(gguf), q8_copy, args.threads, args.context, workdir, args.requantize)
        for server in servers:  # warm-up: first request loads the model / pages in the weights
            asyncio.run(workload(server, make_prompts(1, 16, 0), 4, 1, None, 0))
        for rep in range(args.repeats):
            for k, (label, n, conc, rate) in enumerate(plan(args)):
                prompts = make_prompts(n, args.prompt_tokens, seed=1000 * rep + k)
                shift = (rep + k) % len(servers)
                order = servers[shift:] + servers[:shift]
                for server in order:
                    r = asyncio.run(workload(server, prompts, args.output_tokens, conc, rate, seed=rep))
                    loads += r["load1"]
                    raw.setdefault(label, {}).setdefault(server.name, []).append(r)
                    print(f"rep {rep} {label:12s} {server.name:16s} {r['output_tok_s']:7.1f} tok/s "
                          f"ttft p99 {r['ttft_p99']} errors {r['errors']} load {r['load1']}", flush=True)
            # Written after every repeat, so an interrupted run still leaves its numbers.
            report(args, gguf, q8_copy, raw, loads, stem, repeats_done=rep + 1)
    finally:
        stop_all(grace=60)  # every server started, one that never came up included
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
