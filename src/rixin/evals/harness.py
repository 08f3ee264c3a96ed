"""lm-eval-harness tasks against any rixin model, through rixin's own OpenAI-compatible
endpoint, with task data from local files only (there is no dataset hub here).

    run_harness(model="smollm2-135m-instruct", tasks=Path("src/rixin/evals/tasks"),
                base_url="http://127.0.0.1:8000", api_key=KEY, limit=None) -> lm-eval results dict

Task YAMLs are lm-eval's own format (see tasks/rixin_capitals/); a relative path in
`dataset_kwargs.data_files` is resolved against the YAML's folder, so the files travel with
the task. The model is lm-eval's `local-chat-completions` against `{base_url}/v1/chat/completions`
with the chat template applied by the server: only `generate_until` tasks work that way.
Log-likelihood tasks (multiple choice) would need `local-completions` with `echo` and prompt
log-probabilities plus a local tokenizer for context lengths, which lm-eval loads from the
Hugging Face hub by name: not available offline, so they are refused with a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from rixin.errors import InvalidRequest

BUNDLED_TASKS = Path(__file__).parent / "tasks"


def _resolve(data_files, here: Path):
    if isinstance(data_files, str):
        path = Path(data_files)
        return str(path if path.is_absolute() else (here / path).resolve())
    if isinstance(data_files, list):
        return [_resolve(f, here) for f in data_files]
    if isinstance(data_files, dict):
        return {k: _resolve(v, here) for k, v in data_files.items()}
    return data_files


def load_task_configs(tasks: Path) -> list[dict]:
    """Task config dicts from a YAML file or every *.yaml under a folder, data paths resolved."""
    files = sorted(tasks.rglob("*.yaml")) if tasks.is_dir() else [tasks]
    if not files or not all(f.is_file() for f in files):
        raise InvalidRequest(f"No lm-eval task YAML at '{tasks}'.", param="tasks")
    configs = []
    for f in files:
        try:
            config = yaml.safe_load(f.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise InvalidRequest(f"Task file '{f}' is not plain YAML (no !function tags here): {e}",
                                 param="tasks") from e
        if not isinstance(config, dict) or "task" not in config:
            raise InvalidRequest(f"Task file '{f}' has no 'task' name.", param="tasks")
        if config.get("output_type", "generate_until") != "generate_until":
            raise InvalidRequest(f"Task '{config['task']}' is {config['output_type']}: only generate_until "
                                 "tasks run through chat completions (see rixin.evals.harness).", param="tasks")
        kwargs = dict(config.get("dataset_kwargs") or {})
        if "data_files" not in kwargs or config.get("dataset_path") not in ("json", "csv", "parquet", "text"):
            raise InvalidRequest(f"Task '{config['task']}' must read local files: dataset_path json/csv/"
                                 "parquet/text with dataset_kwargs.data_files (no dataset hub).", param="tasks")
        kwargs["data_files"] = _resolve(kwargs["data_files"], f.parent)
        configs.append({**config, "dataset_kwargs": kwargs})
    return configs


def run_harness(*, model: str, tasks: Path, base_url: str, api_key: str, limit: int | None = None,
                num_concurrent: int = 1) -> dict:
    """lm-eval's results dict ("results": {task: {metric: value}}, "samples" dropped)."""
    configs = load_task_configs(tasks)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    results = simple_evaluate(
        model="local-chat-completions",
        model_args={"model": model, "base_url": base_url.rstrip("/") + "/v1/chat/completions",
                    "tokenizer_backend": None, "tokenized_requests": False, "num_concurrent": num_concurrent,
                    "max_retries": 1, "header": {"Authorization": f"Bearer {api_key}"}},
        tasks=configs, task_manager=TaskManager(include_defaults=False), apply_chat_template=True,
        limit=limit, log_samples=False, bootstrap_iters=0)
    if results is None:
        raise InvalidRequest("lm-eval returned no results.", param="tasks")
    return {k: results[k] for k in ("results", "configs", "n-samples") if k in results}
