"""Summaries of graded items: means per model and grader, and the paired comparison of two
models with a seeded bootstrap confidence interval."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
SEED = 0


def paired_diff(a: list[float], b: list[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                a_id: str = "a", b_id: str = "b") -> dict:
    """b − a per item: its mean, a percentile bootstrap 95% CI of that mean (resampling items,
    pairs kept together), and win/tie/loss counts from b's side."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)  # (n,)
    n = len(d)
    if n == 0:
        return {"a": a_id, "b": b_id, "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "wins": 0, "ties": 0,
                "losses": 0}
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 200):  # (200, n) index blocks bound memory for big sets
        idx = rng.integers(0, n, size=(min(200, resamples - start), n))
        means[start:start + len(idx)] = d[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    eps = 1e-12
    return {"a": a_id, "b": b_id, "mean": float(d.mean()), "ci_low": float(low), "ci_high": float(high),
            "wins": int((d > eps).sum()), "ties": int((np.abs(d) <= eps).sum()), "losses": int((d < -eps).sum())}


def summarise(items: list[dict], models: list[str], graders: list[str]) -> dict:
    """The run's summary from merged items (see evals/service.py for the shape)."""
    out: dict = {"models": {}, "n": len(items), "diff": None, "reasons": {}}
    for model in models:
        per_grader = {g: float(np.mean([it["outputs"][model]["scores"][g] for it in items])) if items else 0.0
                      for g in graders}
        mean = float(np.mean([it["outputs"][model]["mean"] for it in items])) if items else 0.0
        out["models"][model] = {"mean": mean, "graders": per_grader}
        reasons: dict[str, int] = {}
        for it in items:
            for g, r in it["outputs"][model]["reasons"].items():
                reasons[f"{g}:{r}"] = reasons.get(f"{g}:{r}", 0) + 1
        out["reasons"][model] = reasons
    if len(models) == 2:
        a, b = models
        out["diff"] = paired_diff([it["outputs"][a]["mean"] for it in items],
                                  [it["outputs"][b]["mean"] for it in items], a_id=a, b_id=b)
    return out
