#!/usr/bin/env python
"""Eval-harness throughput on the bundled chat model: items/s of rixin's eval run (the
`eval` job behind POST /v1/evals/runs) and of lm-eval-harness through rixin's endpoint,
against the peer that does the least work: the same greedy chat requests sent one by one
with the official openai client.

    .venv/bin/python bench/evals.py [--items 24] [--max-tokens 16] [--repeats 5]

One `rixin up` (fresh data dir) serves all three; every repeat runs the three methods over the
same items in a rotated order (interleaved). Times are wall clock from the first request to
the last answer (eval run: from the POST until the run is seen finished, polled every 0.1 s,
so queueing in the gateway's job runner counts). Reported: median items/s per method, the
median of the per-repeat ratios to the direct client, and the direct client against the
decode limit of the machine (DESIGN.md: ~135 tokens/s single stream, prompt work ignored).
Results: bench/results/evals-<date>.json and .md. Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from common import command, results_stem, today, write_json, write_markdown
from servers import MODEL as CHAT
from servers import start_rixin

DECODE_LIMIT_TPS = 135.0  # DESIGN.md: llama.cpp decode of the bundled model, single stream
COUNTRIES = ["France", "Japan", "Italy", "Germany", "Spain", "Egypt", "Canada", "Peru", "Kenya", "Norway",
             "Chile", "India", "Greece", "Cuba", "Poland", "Nepal", "Ghana", "Sweden", "Turkey", "Mexico",
             "China", "Brazil", "Ireland", "Portugal", "Austria", "Vietnam", "Iran", "Iraq", "Mali", "Chad"]


def items(n: int) -> list[dict]:
    return [{"question": f"What is the capital of {COUNTRIES[i % len(COUNTRIES)]}?", "answer": "x"} for i in range(n)]


def prompt(row: dict) -> str:
    return f"Answer with one word.\nQuestion: {row['question']}\nAnswer:"


def run_direct(client, rows, max_tokens) -> tuple[float, int]:
    start, tokens = time.perf_counter(), 0
    for row in rows:
        r = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": prompt(row)}],
                                           temperature=0, max_tokens=max_tokens)
        tokens += r.usage.completion_tokens
    return time.perf_counter() - start, tokens


def run_eval_job(http, file_id, max_tokens) -> float:
    start = time.perf_counter()
    r = http.post("/v1/evals/runs", json={"eval_file_id": file_id, "models": [CHAT], "max_tokens": max_tokens,
                                          "graders": [{"type": "includes"}]})
    r.raise_for_status()
    while True:
        run = http.get(f"/v1/evals/runs/{r.json()['id']}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            assert run["status"] == "succeeded", run
            return time.perf_counter() - start
        time.sleep(0.1)


def run_lm_eval(task_dir: Path, url: str, key: str) -> float:
    from rixin.evals.harness import run_harness

    start = time.perf_counter()
    run_harness(model=CHAT, tasks=task_dir, base_url=url, api_key=key)
    return time.perf_counter() - start


def write_task(work: Path, rows: list[dict], max_tokens: int) -> Path:
    task_dir = work / "task"
    task_dir.mkdir()
    (task_dir / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (task_dir / "bench.yaml").write_text(json.dumps({  # JSON is YAML
        "task": "rixin_bench", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": "bench.jsonl"}},
        "test_split": "test", "output_type": "generate_until",
        "doc_to_text": "Answer with one word.\nQuestion: {{question}}\nAnswer:", "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\u0000"], "max_gen_toks": max_tokens, "temperature": 0, "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}))
    return task_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import openai

    work = Path(tempfile.mkdtemp(prefix="rixin-bench-evals-"))
    admin = "rx-admin-" + secrets.token_hex(8)
    (work / "data").mkdir()
    server = start_rixin(work / "data", admin, work / "data" / "server.log")
    url = server.url
    try:
        rows = items(args.items)
        client = openai.OpenAI(base_url=url + "/v1", api_key=admin, max_retries=0, timeout=300)
        http = server.http(timeout=300)
        evalset = "".join(json.dumps({"input": prompt(r), "ideal": r["answer"]}) + "\n" for r in rows).encode()
        file_id = client.files.create(file=("bench.jsonl", evalset), purpose="evals").id
        task_dir = write_task(work, rows, args.max_tokens)
        run_direct(client, rows[:2], args.max_tokens)  # warm the replica and the prompt cache path
        methods = {"direct": lambda: run_direct(client, rows, args.max_tokens)[0],
                   "eval_job": lambda: run_eval_job(http, file_id, args.max_tokens),
                   "lm_eval": lambda: run_lm_eval(task_dir, url, admin)}
        names, times = list(methods), {m: [] for m in methods}
        tokens = run_direct(client, rows, args.max_tokens)[1]
        for rep in range(args.repeats):
            for name in names[rep % 3:] + names[:rep % 3]:  # rotated: each method goes first in turn
                times[name].append(methods[name]())
                print(f"repeat {rep} {name}: {args.items / times[name][-1]:.2f} items/s", flush=True)
    finally:
        server.stop(grace=60)
    report(args, times, tokens)


def report(args, times: dict, tokens: int) -> None:
    n = args.items
    ips = {m: statistics.median(n / t for t in ts) for m, ts in times.items()}
    ratios = {m: statistics.median(times["direct"][i] / times[m][i] for i in range(len(times[m])))
              for m in times if m != "direct"}
    limit_ips = DECODE_LIMIT_TPS / (tokens / n)
    result = {"command": command("evals.py"), "items": n, "max_tokens": args.max_tokens,
              "repeats": args.repeats, "completion_tokens_per_item": tokens / n, "seconds": times,
              "items_per_s_median": ips, "ratio_to_direct_median": ratios,
              "decode_limit_items_per_s": limit_ips, "direct_over_limit": ips["direct"] / limit_ips}
    date, stem = today(), results_stem("evals")
    write_json(stem, result, indent=2)
    lines = [f"# Eval-harness throughput ({date})", "", f"`{result['command']}` — {n} items, max_tokens "
             f"{args.max_tokens}, {args.repeats} interleaved repeats, bundled {CHAT}, "
             f"{tokens / n:.1f} completion tokens per item.", "",
             "| method | items/s (median) | ÷ direct client (median of per-repeat ratios) |", "|---|---|---|"]
    for m in times:
        lines.append(f"| {m} | {ips[m]:.2f} | {ratios.get(m, 1.0):.2f} |")
    lines += ["", f"Decode-bound limit: {limit_ips:.2f} items/s ({DECODE_LIMIT_TPS:.0f} tokens/s ÷ tokens per item, "
              f"prompt work ignored); direct client ÷ limit = {ips['direct'] / limit_ips:.4f}."]
    write_markdown(stem, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
