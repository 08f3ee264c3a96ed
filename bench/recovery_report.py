"""The summary, markdown table and plot of bench/recovery.py's results."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from common import median, pair_ratios, start_plot, write_json, write_markdown


def summarise(raw: dict) -> dict:
    out = {}
    keys = ("restored_s", "first_ok_s", "kill_to_new_process_s", "kill_to_process_started_s", "kill_to_first_step_s",
            "restored_via_api_s", "step_s_before_kill", "failed", "slowest_after_kill_s")
    for scenario, sides in raw.items():
        ours, peer = sides["rixin"], next(v for k, v in sides.items() if k != "rixin")
        ratio = median(pair_ratios(ours, peer, "restored_s"))
        out[scenario] = {"ratio": ratio, "n": min(len(ours), len(peer)), "sides": {
            name: {**{k: median(r.get(k) for r in runs) for k in keys},
                   "restored_max_s": max((r["restored_s"] for r in runs if r["restored_s"] is not None), default=None),
                   "not_restored": sum(r["restored_s"] is None for r in runs),
                   "slowest_after_kill_max_s": max((r.get("slowest_after_kill_s") or 0 for r in runs), default=None),
                   "failures": dict(sum((Counter(r.get("failures", {})) for r in runs), Counter())),
                   "steps": sorted({f"{r.get('killed_at_step')}→{r.get('resumed_from_step')}" for r in runs})}
            for name, runs in sides.items()}}
    return out


def fmt(x, spec=".1f") -> str:
    return "—" if x is None else format(x, spec)


def write_report(result: dict, stem: Path) -> None:
    write_json(stem, result)
    m, loads, summary = result["machine"], result["loads"], result["summary"]
    lines = [f"# recovery.py — {result['date']} ({result['repeats_done']} of {result['args']['repeats']} repeats)", "",
             f"`{result['command']}`", "",
             f"Machine: {m['cpu']}, {m['nproc']} cores, {m['memory']}; threads {result['args']['threads']}; "
             f"load average (1 min) at the kills: {min(loads):.1f}-{max(loads):.1f}. Medians over repeats; "
             "ours ÷ peer = median of the per-repeat ratios of kill → restored.", ""]
    if "serve" in summary:
        s = summary["serve"]
        lines += ["## (a) serve: kill -9 of the engine replica / the server, one client sending back to back", "",
                  "| side | kill → restored s, median (max) | ours ÷ peer | kill → first success s | "
                  "kill → new process exists s | failed requests | what failed (all repeats) | "
                  "slowest request after the kill s (max) |", "|" + "---|" * 8]
        for i, (name, v) in enumerate(s["sides"].items()):
            fails = ", ".join(f"{k} ×{n}" for k, n in v["failures"].items()) or "none"
            lines.append(f"| {name} | {fmt(v['restored_s'])} ({fmt(v['restored_max_s'])})"
                         f"{' · %d never' % v['not_restored'] if v['not_restored'] else ''} | "
                         f"{fmt(s['ratio'], '.2f') if i == 0 else ''} | {fmt(v['first_ok_s'])} | "
                         f"{fmt(v['kill_to_new_process_s'], '.2f')} | {fmt(v['failed'], '.0f')} | {fails} | "
                         f"{fmt(v['slowest_after_kill_s'])} ({fmt(v['slowest_after_kill_max_s'])}) |")
        lines += ["", "restored = the end of the first request sent after the kill that streamed its answer; first "
                  "success = any request that succeeded after the kill (one in flight may be retried inside the "
                  "server); new process = create time of the replacement process (a Ray worker may be one Ray "
                  "started before the kill).", ""]
    if "train" in summary:
        s = summary["train"]
        lines += ["## (b) train: kill -9 of the training process (rixin: its Ray Train worker)", "",
                  "| side | step killed → resumed from | kill → past the step reached s, median (max) | ours ÷ peer | "
                  "kill → new process s | kill → process ready s | kill → first step s | step time before s |",
                  "|" + "---|" * 8]
        for i, (name, v) in enumerate(s["sides"].items()):
            lines.append(f"| {name} | {', '.join(v['steps'])} | {fmt(v['restored_s'])} ({fmt(v['restored_max_s'])})"
                         f"{' · %d never' % v['not_restored'] if v['not_restored'] else ''} | "
                         f"{fmt(s['ratio'], '.2f') if i == 0 else ''} | {fmt(v['kill_to_new_process_s'])} | "
                         f"{fmt(v['kill_to_process_started_s'])} | {fmt(v['kill_to_first_step_s'])} | "
                         f"{fmt(v['step_s_before_kill'], '.2f')} |")
        via = s["sides"].get("rixin", {}).get("restored_via_api_s")
        lines += ["", "past the step reached = the first step logged after the kill numbered above the last step "
                  f"before it (rixin: the job's metrics.jsonl; through the job API's progress.step: {fmt(via)} s "
                  "median, 0.2 s polling); process ready = rixin's `resumed` line / the Trainer process's start line "
                  "(model loaded, about to resume from the checkpoint).", ""]
    lines.append("Per-repeat numbers, with the load at each kill, are in the JSON.")
    write_markdown(stem, "\n".join(lines) + "\n")
    plt = start_plot()
    scen = list(result["raw"])
    fig, axes = plt.subplots(1, len(scen), figsize=(6 * len(scen), 4), squeeze=False)
    for ax, sc in zip(axes[0], scen):
        sides = result["raw"][sc]
        data = [[r["restored_s"] for r in runs if r["restored_s"] is not None] for runs in sides.values()]
        ax.boxplot(data)
        for i, d in enumerate(data, start=1):
            ax.scatter([i] * len(d), d, s=12, color="black", zorder=3)
        ax.set_xticks(range(1, len(sides) + 1), list(sides))
        ax.set_ylabel("kill -9 → restored (s)")
        ax.set_title(f"{sc}: kill -9 → restored")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)

