"""lm-eval-harness against a live rixin server: the bundled task (local JSONL, no hub) runs
through `rixin eval harness` with lm-eval's local-chat-completions model, every item reaches
the gateway, and the exact-match score is what the model's greedy answers give; tasks that
would need the hub or log-likelihoods are refused with a clear error."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import CHAT, RIXIN
from rixin.errors import InvalidRequest
from rixin.evals.harness import BUNDLED_TASKS, load_task_configs

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.timeout(1200)  # the first test also waits for the server

TASK = BUNDLED_TASKS / "rixin_capitals" / "rixin_capitals.yaml"
ROWS = [json.loads(line) for line in (BUNDLED_TASKS / "rixin_capitals" / "rixin_capitals.jsonl").read_text().splitlines()]
LIMIT = 4


def test_harness_end_to_end(server, tmp_path):
    key = server.new_key(f"lm-eval-{server.backend}")
    out = tmp_path / "results.json"
    result = subprocess.run([RIXIN, "eval", "harness", "--model", CHAT, "--tasks", str(TASK), "--url", server.url,
                             "--limit", str(LIMIT), "--out", str(out)],
                            env={**server.env, "RIXIN_API_KEY": key}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(out.read_text())
    scores = results["results"]["rixin_capitals"]
    assert results["n-samples"]["rixin_capitals"]["effective"] == LIMIT
    # the same greedy answers, asked directly, give the same exact-match score
    client = server.client(key)
    hits = 0
    for row in ROWS[:LIMIT]:
        prompt = f"Answer with one word.\nQuestion: {row['question']}\nAnswer:"
        answer = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": prompt}],
                                                temperature=0, max_tokens=8, stop=["\n", "."], seed=1234)
        words = re.findall(r"([A-Za-z]+)", answer.choices[0].message.content or "")
        hits += bool(words) and words[0].lower() == row["answer"].lower()
    assert scores["exact_match,first_word"] == pytest.approx(hits / LIMIT)
    assert "rixin_capitals" in result.stdout


def test_harness_rejects_a_wrong_key(server):
    result = subprocess.run([RIXIN, "eval", "harness", "--model", CHAT, "--tasks", str(TASK), "--url", server.url,
                             "--limit", "1"], env={**server.env, "RIXIN_API_KEY": "rx-wrong"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0


def test_task_files_are_local_and_generative(tmp_path):
    config = load_task_configs(TASK)[0]
    assert config["dataset_kwargs"]["data_files"]["test"] == str(TASK.parent.resolve() / "rixin_capitals.jsonl")
    hub = tmp_path / "hub.yaml"
    hub.write_text("task: t\ndataset_path: EleutherAI/arithmetic\noutput_type: generate_until\n")
    with pytest.raises(InvalidRequest, match="local files"):
        load_task_configs(hub)
    mc = tmp_path / "mc.yaml"
    mc.write_text("task: t\ndataset_path: json\ndataset_kwargs: {data_files: x.jsonl}\noutput_type: multiple_choice\n")
    with pytest.raises(InvalidRequest, match="generate_until"):
        load_task_configs(mc)
    with pytest.raises(InvalidRequest, match="No lm-eval task"):
        load_task_configs(tmp_path / "nothing")
