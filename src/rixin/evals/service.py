"""Eval runs: start one (an EvalRun row + a queued "eval" job), read it back.

The flywheel's promotion gate calls exactly these two functions:

    start_run(platform, caller, *, models: list[str], eval_file_id: str, graders: list[dict],
              name: str | None = None, max_tokens: int = 64) -> EvalRun
    get_run(platform, caller, run_id: str) -> EvalRun

`EvalRun.status`: queued | running | succeeded | failed | cancelled (the job's status).
`EvalRun.summary` once succeeded (diff = b − a on the per-item mean score, a = models[0],
b = models[1]; None when fewer or more than two models):

    {"models": {model_id: {"mean": float, "graders": {grader_name: mean}}},
     "n": int,
     "diff": {"a": id, "b": id, "mean": float, "ci_low": float, "ci_high": float,
              "wins": int, "ties": int, "losses": int} | None}

(`wins` counts items where b scored higher than a.) The CI is a seeded paired bootstrap 95%
interval (2000 resamples) of the mean per-item difference.
"""

from __future__ import annotations

DEFAULT_MAX_TOKENS = 64


def start_run(platform, caller, *, models: list[str], eval_file_id: str, graders: list[dict],
              name: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS):
    raise NotImplementedError  # filled in below in the next commit


def get_run(platform, caller, run_id: str):
    raise NotImplementedError
