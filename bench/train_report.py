"""What one training run measured, the summary over repeats (medians, ours ÷ peer, ours ÷ the
physical limit) and the results' markdown table and plot."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from common import median, pair_ratios, start_plot, write_json, write_markdown

MATMUL = 240e9  # FLOP/s, DESIGN.md: fp32 matmul over both cores of the dev machine


def measure(run: dict, warmup: int) -> dict:
    """Throughput over steps warmup+1..N: tokens of those steps / (t_N - t_warmup)."""
    steps = run["steps"]
    after = steps[warmup:]
    span = steps[-1]["time"] - steps[warmup - 1]["time"] if warmup else steps[-1]["time"] - run["t_train_start"]
    tokens = sum(s["tokens"] for s in after)
    last = [s["loss"] for s in steps[-max(3, len(steps) // 10):]]
    return {"tokens_per_s": tokens / span, "trained_tokens_per_s": sum(s["trained"] for s in after) / span,
            "positions_per_s": sum(s["positions"] for s in after) / span,
            "padding_share": 1 - sum(s["tokens"] for s in steps) / sum(s["positions"] for s in steps),
            "optimizer_steps": len(steps), "loop_s": steps[-1]["time"] - run["t_train_start"],
            "setup_s": run["t_train_start"] - run["t_start"],
            "process_s": run["t_end"] - run["t_start"], "peak_rss_mb": run["peak_rss_mb"],
            "matmul_gflops": run["matmul_gflops"], "eval_loss": run["eval_loss"],
            "final_train_loss": statistics.mean(last), "threads": run["threads"],
            "epoch_tokens": sum(s["tokens"] for s in steps), "epoch_trained": sum(s["trained"] for s in steps)}


def summarise(runs: dict[str, list[dict]], flops: dict, threads: int) -> dict:
    keys = ["tokens_per_s", "trained_tokens_per_s", "positions_per_s", "padding_share", "optimizer_steps",
            "loop_s", "process_s", "peak_rss_mb", "eval_loss", "final_train_loss", "matmul_gflops"]
    med = {side: {k: statistics.median(r[k] for r in rs) for k in keys} for side, rs in runs.items()}
    ratio = {k: median(pair_ratios(runs["rixin"], runs["baseline"], k))
             for k in ("tokens_per_s", "trained_tokens_per_s", "peak_rss_mb", "loop_s")}
    # DESIGN.md's 240 GFLOP/s is both cores; a run pinned to fewer threads gets its share.
    limit = MATMUL * min(1.0, threads / (os.cpu_count() or 1)) / flops["flops_per_token"]
    # What the machine gave at the time: each run's own matmul rate (measured before and after it).
    now = {side: statistics.median(r["tokens_per_s"] * flops["flops_per_token"] / (r["matmul_gflops"] * 1e9)
                                   for r in rs) for side, rs in runs.items()}
    return {"median": med, "ratio_median_of_pairs": ratio, "limit_tokens_per_s": limit,
            "ours_over_limit": med["rixin"]["tokens_per_s"] / limit,
            "baseline_over_limit": med["baseline"]["tokens_per_s"] / limit,
            "ours_over_measured_matmul": now["rixin"], "baseline_over_measured_matmul": now["baseline"]}


def write_report(res: dict, stem: Path) -> None:
    write_json(stem, res)
    lines = _summary_lines(res)
    if res.get("recovery"):
        lines += _recovery_lines(res["recovery"])
    if res.get("profile"):
        lines += _profile_lines(res["profile"])
    lines += ["", "## Machine and versions", "", f"{res['machine']['nproc']} cores ({res['machine']['cpu']}), "
              f"{res['machine']['memory']}, flags {' '.join(res['machine']['flags'])}; "
              f"Python {res['machine']['python']}; "
              + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".", "",
              f"Plot: [{stem.name}.png]({stem.name}.png)", ""]
    write_markdown(stem, "\n".join(lines))
    plot(res, stem.with_suffix(".png"))


def _summary_lines(res: dict) -> list[str]:
    s, m = res["summary"], res["summary"]["median"]
    r, b = m["rixin"], m["baseline"]
    ratio = s["ratio_median_of_pairs"]
    d = res["data"]
    lines = [f"# Training benchmark: rixin LoRA vs transformers Trainer + peft ({res['date']})", "",
             f"Command: `{res['command']}`", "",
             f"SmolLM2-135M-Instruct ({res['spec'].get('precision', 'fp32')} on both sides), "
             f"LoRA r={res['spec']['lora_rank']} alpha={res['spec']['lora_alpha']} on "
             f"{', '.join(res['spec']['targets'])}; {d['examples']} generated chat examples "
             f"({d['min_len']}-{d['max_len']} tokens, median {d['median_len']}, {d['tokens']} tokens, "
             f"{d['trained_tokens']} trained), {res['spec']['epochs']} epoch(s), lr {res['spec']['learning_rate']}, "
             f"seed {res['spec']['seed']}, torch threads: {res['spec']['threads']} each side. rixin packs "
             f"{d['examples_per_row']:.2f} examples per 512-token row (fill {d['row_fill']:.0%}), batch "
             f"{res['spec']['rixin_batch_rows']} rows ≈ "
             f"{res['spec']['rixin_batch_rows'] * d['examples_per_row']:.1f} "
             f"examples; baseline batch {res['spec']['batch_examples']} examples, padded per batch. "
             f"{res['repeats']} interleaved repeats"
             + (f" (**only {res['repeats']} of the {res['repeats_asked']} asked for finished**)"
                if res.get("repeats_asked", res["repeats"]) > res["repeats"] else "")
             + ", fresh process each; medians; throughput over steps after "
             f"the first {res['spec']['warmup_steps']}.", "",
             "| | rixin | Trainer + peft | rixin ÷ baseline |", "|---|---|---|---|",
             f"| non-padding tokens/s | {r['tokens_per_s']:.1f} | {b['tokens_per_s']:.1f} | "
             f"**{ratio['tokens_per_s']:.2f}×** |",
             f"| trained (assistant) tokens/s | {r['trained_tokens_per_s']:.1f} | {b['trained_tokens_per_s']:.1f} | "
             f"{ratio['trained_tokens_per_s']:.2f}× |",
             f"| positions computed/s (incl. padding) | {r['positions_per_s']:.1f} | {b['positions_per_s']:.1f} | |",
             f"| padding share of computed positions | {r['padding_share']:.1%} | {b['padding_share']:.1%} | |",
             f"| optimizer steps | {r['optimizer_steps']:.0f} | {b['optimizer_steps']:.0f} | |",
             f"| training loop wall time (s) | {r['loop_s']:.0f} | {b['loop_s']:.0f} | {ratio['loop_s']:.2f} |",
             f"| peak RSS (MB) | {r['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} | {ratio['peak_rss_mb']:.2f} |",
             f"| held-out loss after training (same scorer) | {r['eval_loss']:.4f} | {b['eval_loss']:.4f} | |",
             f"| train loss, mean of last 10% steps | {r['final_train_loss']:.4f} | {b['final_train_loss']:.4f} | |",
             f"| ÷ physical limit ({s['limit_tokens_per_s']:.0f} tokens/s) | {s['ours_over_limit']:.1%} | "
             f"{s['baseline_over_limit']:.1%} | |",
             f"| ÷ matmul rate measured in the run ({r['matmul_gflops']:.1f} / {b['matmul_gflops']:.1f} GFLOP/s) | "
             f"{s['ours_over_measured_matmul']:.1%} | {s['baseline_over_measured_matmul']:.1%} | |", "",
             f"Held-out loss of the base model before training: {res['base_eval_loss']:.4f}.",
             f"Physical limit: {MATMUL / 1e9:.0f} GFLOP/s ÷ {res['flops']['flops_per_token'] / 1e6:.0f} "
             "MFLOP per token "
             f"({res['flops']['formula']}; P = {res['flops']['params_matmul'] / 1e6:.1f} M, "
             f"P_lora = {res['flops']['params_lora'] / 1e6:.2f} M), scaled to {res['spec']['threads']} of "
             f"{res['machine']['nproc']} cores. The last row divides by the fp32 matmul rate each run measured "
             "for itself (same threads, before and after training): the share of what the loaded machine gave.",
             f"Load average (1 min) seen during the runs: {min(res['load']):.1f} to {max(res['load']):.1f} on "
             f"{res['machine']['nproc']} cores.", "", "## Every run", "",
             "| repeat | side | tokens/s | trained tokens/s | peak RSS MB | held-out loss | steps "
             "| matmul GFLOP/s | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in res["runs"]:
        lines.append(f"| {run['repeat']} | {run['side']} | {run['tokens_per_s']:.1f} | "
                     f"{run['trained_tokens_per_s']:.1f} | "
                     f"{run['peak_rss_mb']:.0f} | {run['eval_loss']:.4f} | {run['optimizer_steps']} | "
                     f"{run['matmul_gflops']:.1f} | {run['load']:.1f} |")
    return lines


def _recovery_lines(rec: dict) -> list[str]:
    lines = ["", "## Recovery: kill -9 of the Ray Train worker → training resumed", "",
             f"Real job through `rixin up` and the openai client; hyperparameters {rec['hyperparameters']}; "
             "kill at step ≥ 6. Times from the kill to the worker's `resumed` line and to its next `step` "
             "line in metrics.jsonl, and to when the events API showed them (0.2 s polling).", "",
             "| job | killed at step | resumed from | kill → resumed (s) | kill → next step (s) | "
             "seen via API: resumed / next step (s) | step time before (s) |", "|---|---|---|---|---|---|---|"]
    for x in rec["runs"]:
        f = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
        lines.append(f"| {x['job']} | {x['killed_at_step']} | {x['resumed_from_step']} | "
                     f"{f(x['kill_to_resumed_event_s'])} | "
                     f"{f(x['kill_to_next_step_s'])} | {f(x['kill_to_resumed_seen_via_api_s'])} / "
                     f"{f(x['kill_to_next_step_seen_via_api_s'])} | {f(x['step_s_before_kill'])} |")
    return lines


def _profile_lines(p: dict) -> list[str]:
    lines = ["", "## Profile of one rixin run", "", f"cProfile total {p['cprofile_total_s']} s. "
             "torch.profiler, steps 3-5, top operators by self CPU time:", "",
             "| op | calls | self CPU ms | share |", "|---|---|---|---|"]
    lines += [f"| `{o['op']}` | {o['calls']} | {o['self_cpu_ms']} | {o['share']:.1%} |"
              for o in p["torch_ops_steps_3_5"][:12]]
    lines += ["", "cProfile, top functions by own time:", "", "| function | calls | own s | share |",
              "|---|---|---|---|"]
    lines += [f"| `{o['function']}` | {o['calls']} | {o['tottime_s']} | {o['share']:.1%} |"
              for o in p["cprofile_top_tottime"][:10]]
    w = p["what_ifs"]
    lines += ["", f"What-ifs on one real packed batch ({w['batch_rows']} rows × {w['batch_len']} positions, "
              f"{w['batch_tokens']} tokens, {w['batch_trained_tokens']} trained), median seconds. stock: transformers' "
              "own loss (LM head on every position); head_on_trained_only: the recipe's loss as it runs now; "
              "padding_mask_only and bf16_autocast: on top of the recipe's loss:", "",
              "| variant | s | vs stock |", "|---|---|---|"]
    stock = w["stock_fwd_bwd_s"]
    for k in ("collate_s", "stock_fwd_bwd_s", "head_on_trained_only_s",
              "padding_mask_only_s", "bf16_autocast_s"):
        lines.append(f"| {k[:-2]} | {w[k]:.3f} | {w[k] / stock:.2f} |")
    return lines


def plot(res: dict, path: Path) -> None:
    plt = start_plot()
    sides = [("rixin", "rixin (packed)"), ("baseline", "Trainer + peft (padded)")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in ((axes[0], "tokens_per_s", "non-padding tokens/s"),
                           (axes[1], "peak_rss_mb", "peak RSS (MB)")):
        for x, (side, name) in enumerate(sides):
            values = [r[key] for r in res["runs"] if r["side"] == side]
            ax.bar(x, statistics.median(values), color=("tab:blue", "tab:gray")[x], alpha=0.6)
            ax.scatter([x] * len(values), values, color="black", s=12, zorder=3)
        ax.set_xticks([0, 1], [n for _, n in sides])
        ax.set_title(label)
    axes[0].set_title(f"non-padding tokens/s (physical limit {res['summary']['limit_tokens_per_s']:.0f})")
    for side, name in sides:
        run = next(r for r in res["raw"] if r["side"] == side)
        seen = 0
        xs, ys = [], []
        for s in run["steps"]:
            seen += s["tokens"]
            xs.append(seen)
            ys.append(s["loss"])
        axes[2].plot(xs, ys, label=name)
    axes[2].set_xlabel("non-padding tokens seen")
    axes[2].set_ylabel("train loss")
    axes[2].set_title("train loss (first repeat)")
    axes[2].legend()
    fig.suptitle(f"LoRA fine-tuning of SmolLM2-135M on {res['machine']['nproc']} CPU cores — "
                 f"rixin ÷ baseline {res['summary']['ratio_median_of_pairs']['tokens_per_s']:.2f}× tokens/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)

