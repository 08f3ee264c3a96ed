"""The cleaning benchmark's summary (median documents/s per stage and tool, the median of the
per-repeat ratios rixin ÷ peer with their range, rixin ÷ the memory-bandwidth limit) and its
markdown table and plot."""

from __future__ import annotations

import statistics
from pathlib import Path

from common import median, pair_ratios, start_plot

BANDWIDTH = 30e9  # bytes/s, DESIGN.md: memory bandwidth over both cores of the dev machine
CORE = ("normalize", "quality", "exact", "near")  # the stages both sides do alike


def summarise(runs: dict[str, list[dict]], n_docs: int) -> dict:
    """Median docs/s per stage and tool, median per-repeat ratio rixin / peer, ours / limit."""
    stages = ["normalize", "quality", "pii", "exact", "near", "langid", "end_to_end", "end_to_end+pii"]

    def dps(run: dict, stage: str) -> float | None:
        st = run["stages"]
        if stage.startswith("end_to_end"):
            names = [*CORE, "pii"] if stage.endswith("+pii") else list(CORE)
            return n_docs / sum(st[s]["s"] for s in names)
        return st[stage]["docs"] / st[stage]["s"] if stage in st else None

    out: dict = {}
    for stage in stages:
        row: dict = {}
        for tool, tool_runs in runs.items():
            row[tool] = median(dps(r, stage) for r in tool_runs)
        for peer in runs:
            if peer == "rixin":
                continue
            pairs = pair_ratios(runs["rixin"], runs[peer], lambda run: dps(run, stage))
            row[f"rixin/{peer}"] = median(pairs)
            row[f"rixin/{peer} range"] = [min(pairs), max(pairs)] if pairs else None
        rx = runs["rixin"]
        if stage.startswith("end_to_end"):
            per_s = [rx_run["bytes_in"] / sum(rx_run["stages"][s]["s"] for s in
                                             ([*CORE, "pii"] if stage.endswith("+pii") else CORE)) for rx_run in rx]
        else:
            per_s = [r["stages"][stage]["bytes"] / r["stages"][stage]["s"] for r in rx]
        row["rixin_MB_per_s"] = statistics.median(per_s) / 1e6
        row["rixin/limit"] = statistics.median(per_s) / BANDWIDTH
        out[stage] = row
    return out


def fmt(x, spec: str = ",.0f") -> str:
    return "—" if x is None else format(x, spec)


def ratio_cell(row: dict, peer: str) -> str:
    """'median (min-max over repeats)' of the per-repeat ratio rixin / peer."""
    if row.get(f"rixin/{peer}") is None:
        return "—"
    low, high = row[f"rixin/{peer} range"]
    return f"**{row[f'rixin/{peer}']:.2f}** ({low:.2f}–{high:.2f})"


def markdown(res: dict) -> str:
    tools = list(res["runs"])
    lines = [f"# Data cleaning: rixin vs {' vs '.join(tools[1:])} ({res['date']})", "",
             f"Command: `{res['command']}`", "",
             f"{res['docs']:,} generated documents ({res['corpus_mb']:.1f} MB UTF-8), {res['repeats']} repeats, "
             f"tools alternating order each repeat; single process, one thread each. Load average seen "
             f"(1-min) from {min(res['load']):.1f} to {max(res['load']):.1f} on {res['machine']['nproc']} cores.",
             "", "## Throughput (documents/s into each stage, median over repeats)", ""]
    head = "| stage | " + " | ".join(tools) + " | " + " | ".join(f"rixin ÷ {t} (min–max)" for t in tools[1:])
    head += " | rixin MB/s | rixin ÷ limit (30 GB/s) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for stage, row in res["summary"].items():
        cells = [fmt(row.get(t)) for t in tools] + [ratio_cell(row, t) for t in tools[1:]]
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {row['rixin_MB_per_s']:.2f} | "
                     f"{row['rixin/limit']:.1e} |")
    lines += ["", "end_to_end = normalize + quality + exact + near over all input documents; +pii adds the "
              "PII stage (rixin redacts 6 types with validation, datatrove e-mail and IP only, DJ e-mail and "
              "IP). langid is rixin only (datatrove's and DJ's need a fastText model download).", "",
              "## Accuracy against the planted ground truth", "",
              "| tool | junk removed | clean wrongly removed | Chinese wrongly removed | dedup precision | "
              "dedup recall | exact copies caught | near caught | near (scattered edits) | "
              "near (span edits) | near (Chinese) |", "|" + "---|" * 11]
    for tool, acc in res["accuracy"].items():
        rc = acc["recall_by_copy_kind"]
        lines.append(f"| {tool} | {acc['junk_removed']:.3f} | {acc['clean_wrongly_removed']:.4f} | "
                     f"{acc['zh_wrongly_removed']:.4f} | {acc['dedup_precision']:.4f} | {acc['dedup_recall']:.4f} | "
                     + " | ".join(fmt(rc[k], ".3f") for k in ("exact", "near", "near:scattered", "near:spans",
                                                               "near:zh")) + " |")
    j = res["corpus"]["near_jaccard"]
    lines += ["", f"Planted near copies: character 5-gram Jaccard min {j['char5_min']:.3f}, median "
              f"{j['char5_median']:.3f}; word 5-gram Jaccard (English) min {j['word5_min']:.3f}, median "
              f"{j['word5_median']:.3f}.", ""]
    if res.get("job"):
        job = res["job"]
        lines += ["## rixin job path (split_into_shards → process_shard per shard → find_duplicates, no Ray)", "",
                  f"{job['docs']:,} documents, default recipe (all blocks incl. langid and PII): "
                  f"{job['docs_per_s']:,.0f} docs/s end to end ({job['total_s']:.1f} s: split {job['split_s']:.1f} s, "
                  f"shards {job['process_shards_s']:.1f} s, find_duplicates {job['find_duplicates_s']:.1f} s).", ""]
    if res.get("scale"):
        sc = res["scale"]
        lines += [f"## rixin alone at {sc['docs']:,} documents (one run)", "",
                  "| stage | docs/s | s |", "|---|---|---|"]
        for stage, row in sc["stages"].items():
            lines.append(f"| {stage} | {row['docs'] / row['s']:,.0f} | {row['s']:.1f} |")
        a = sc["accuracy"]
        lines += ["", f"Accuracy: junk removed {a['junk_removed']:.3f}, clean wrongly removed "
                  f"{a['clean_wrongly_removed']:.4f}, dedup precision {a['dedup_precision']:.4f}, recall "
                  f"{a['dedup_recall']:.4f}.", ""]
    if res.get("profile"):
        lines += [f"## cProfile of rixin's slowest stage ({res['profile']['stage']}), top functions by own time",
                  "", "| function | calls | own s | cumulative s |", "|---|---|---|---|"]
        lines += [f"| `{r['function']}` | {r['calls']:,} | {r['tottime_s']} | {r['cumtime_s']} |"
                  for r in res["profile"]["top"]]
        lines.append("")
    m = res["machine"]
    lines += ["## Machine and versions", "", f"{m['nproc']} cores ({m['cpu']}), {m['memory']}, flags "
              f"{' '.join(m['flags'])}; Python {m['python']}; thread pins {m['threads']}.", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()), ""]
    lines += [f"Notes: {note}" for note in res["notes"]]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    plt = start_plot()
    stages = [s for s in res["summary"] if s != "end_to_end+pii"]
    tools = list(res["runs"])
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(tools)
    for k, tool in enumerate(tools):
        vals = [res["summary"][s].get(tool) or 0 for s in stages]
        bars = ax.bar([i + (k - (len(tools) - 1) / 2) * width for i in range(len(stages))], vals, width, label=tool)
        for bar, v in zip(bars, vals):
            if v:
                ax.annotate(f"{v:,.0f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom",
                            fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_ylim(top=3 * max(v or 0 for s in stages for v in (res["summary"][s].get(t) for t in tools)))
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("documents / s (log scale, median)")
    ax.set_title(f"Cleaning throughput, {res['docs']:,} docs, {res['repeats']} repeats, 1 process each "
                 f"({res['date']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
