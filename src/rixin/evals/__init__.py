"""Evaluations: eval sets, graders, eval runs (a resumable job), paired comparisons."""
