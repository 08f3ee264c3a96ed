"""The `rixin` CLI as one HTTP client of the API (issue 19): every command below runs as a
subprocess against a live gateway, with --url/--key or RIXIN_BASE_URL/RIXIN_API_KEY, as a user
on another machine would; none is given the data dir."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import CHAT, RIXIN, free_port
from test_datasets import paragraph


@pytest.fixture(scope="module")
def key(server) -> str:
    return server.new_key(f"cli-{server.backend}")


def test_data_create_clean_report_list_with_a_local_recipe(server, key, tmp_path):
    corpus = tmp_path / "notes.txt"
    docs = [paragraph(i) for i in range(40)]
    corpus.write_text("\n\n".join(docs + docs[:5]))  # 5 exact duplicates
    created = server.cli("data", "create", "notes", str(corpus), key=key)
    dataset = created.stdout.strip().splitlines()[-1]
    assert dataset.startswith("ds") and "45 records" in created.stdout, created.stdout
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("name: mine\nsteps: [exact_dedup]\n")
    cleaned = server.cli("data", "clean", dataset, "--recipe", str(recipe), "--shard-size", "10", key=key)
    assert re.search(r"cleaning job \S+", cleaned.stdout) and "exact_duplicate" in cleaned.stdout, cleaned.stdout
    assert "version 2 (clean): 40 records" in cleaned.stdout
    report = server.cli("data", "report", dataset, "--version", "2", key=key).stdout
    assert "exact_duplicate" in report and "40 records" in report
    listed = server.cli("data", "list", key=key).stdout
    assert dataset in listed and "notes" in listed
    # the dataset is the key's project's: the admin key (project 'default') does not see it
    hidden = server.cli("data", "report", dataset, check=False)
    assert hidden.returncode == 2 and dataset in hidden.stderr and "hint:" in hidden.stderr


def test_a_bad_recipe_file_names_the_field_and_the_file(server, key, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: bad\nsteps: [no_such_block]\n")
    bad = server.cli("data", "clean", "ds-any", "--recipe", str(recipe), key=key, check=False)
    assert bad.returncode == 2 and "no_such_block" in bad.stderr and "bad.yaml" in bad.stderr


def test_errors_say_what_is_wrong_and_what_to_do(server, key):
    gone = subprocess.run([RIXIN, "data", "list", "--url", f"http://127.0.0.1:{free_port()}", "--key", key],
                          capture_output=True, text=True, timeout=60, env=server.env)
    assert gone.returncode == 2 and "rixin up" in gone.stderr and "Traceback" not in gone.stderr
    wrong = server.cli("models", "list", key="rx-wrong", check=False)
    assert wrong.returncode == 2 and "RIXIN_API_KEY" in wrong.stderr
    other = server.cli("data", "list", "--project", "someone-else", key=key, check=False)
    assert other.returncode == 2 and f"cli-{server.backend}" in other.stderr and "someone-else" in other.stderr
    missing = server.cli("eval", "show", "evalrun-nope", key=key, check=False)
    assert missing.returncode == 2 and "evalrun-nope" in missing.stderr
    not_admin = server.cli("keys", "list", "--project", "default", key=key, check=False)
    assert not_admin.returncode == 2 and "admin" in not_admin.stderr


def test_global_options_and_environment(server, key):
    # `rixin --url U --key K COMMAND`, the openai CLI's form, with no RIXIN_* in the environment
    done = subprocess.run([RIXIN, "--url", server.url, "--key", key, "models", "list"], capture_output=True,
                          text=True, timeout=60, env=server.env)
    assert done.returncode == 0 and CHAT in done.stdout, done.stderr
    # a command's own --key wins over RIXIN_API_KEY
    done = subprocess.run([RIXIN, "models", "list", "--key", key], capture_output=True, text=True, timeout=60,
                          env={**server.cli_env("rx-wrong")})
    assert done.returncode == 0 and CHAT in done.stdout, done.stderr


def test_keys_list_and_revoke_with_an_admin_key(server):
    project = f"cli-keys-{server.backend}"
    doomed = server.new_key(project)
    listed = server.cli("keys", "list", "--project", project).stdout
    rows = server.http().get(f"/v1/projects/{project}/api_keys").json()["data"]
    assert len(rows) == 1 and rows[0]["id"] in listed and rows[0]["prefix"] in listed, listed
    revoked = server.cli("keys", "revoke", rows[0]["id"], "--project", project).stdout
    assert rows[0]["id"] in revoked
    assert server.http(doomed).get("/v1/models").status_code == 401


def test_models_list_and_show(server, key):
    listed = server.cli("models", "list", key=key).stdout
    assert CHAT in listed and "llama.cpp" in listed
    shown = server.cli("models", "show", CHAT, key=key).stdout
    assert CHAT in shown and "lineage:" in shown


def test_train_create_follow_and_plot_a_cancelled_job(server, key, tmp_path):
    training = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(12)]
    training.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    created = server.cli("train", "create", "--training-file", str(training), "--hp", "n_epochs=1",
                         "--suffix", "cli", key=key)
    job_id = created.stdout.strip().splitlines()[-1]
    assert job_id.startswith("ftjob"), created.stdout
    http = server.http(key)
    job = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 1
    assert http.get(f"/v1/files/{job['training_file']}").json()["filename"] == "train.jsonl"  # uploaded
    http.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")  # the CLI's part is what this test checks, not training
    followed = server.cli("train", "follow", job_id, key=key)
    assert "cancelled" in followed.stdout
    png = tmp_path / "loss.png"
    assert server.cli("train", "plot", job_id, "--out", str(png), key=key).stdout.strip() == str(png)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_deploy_and_flywheel(server, key):
    name = f"cli-bot-{server.backend}"
    assert server.cli("deploy", "create", "--name", name, "--model", CHAT, key=key).stdout.strip() == name
    listed = server.cli("deploy", "list", key=key).stdout
    assert name in listed and CHAT in listed
    never = server.cli("deploy", "rollback", "--name", name, key=key, check=False)
    assert never.returncode == 2 and "error" in never.stderr  # nothing to roll back to
    exported = json.loads(server.cli("flywheel", "export", "--deployment", name, key=key).stdout)
    assert isinstance(exported, dict)
    unset = server.cli("flywheel", "run", "--deployment", name, key=key, check=False)
    assert unset.returncode == 2 and "flywheel.eval_file_id" in unset.stderr  # the field to set, named
    http = server.http(key)
    eval_file = http.post("/v1/files", data={"purpose": "evals"}, files={"file": (
        "e.jsonl", json.dumps({"input": "Say hi.", "ideal": "hi"}).encode())}).json()["id"]
    http.post(f"/v1/deployments/{name}", json={"flywheel": {"eval_file_id": eval_file,
                                                            "graders": [{"type": "includes"}]}})
    # no feedback yet: the gateway skips the turn (too little feedback), which --wait follows to its end
    ran = server.cli("flywheel", "run", "--deployment", name, "--every", "1d", "--wait", key=key).stdout
    turn = ran.strip().splitlines()[-1]
    assert "skipped" in ran and "min_examples" in ran, ran
    assert http.get(f"/v1/deployments/{name}").json()["flywheel"]["every"] == "1d"
    assert turn in server.cli("flywheel", "turns", "--deployment", name, key=key).stdout
