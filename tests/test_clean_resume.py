"""A cleaning job whose gateway is killed halfway (kill -9 of the whole process group, Ray
included) resumes at the gateway's next start without redoing finished shards, ends with the
same result as an uninterrupted run, and `rixin data clean --resume JOB` follows it to the end."""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import subprocess
import time
from collections import Counter

from conftest import RIXIN, start_server, stop_server
from test_datasets import paragraph


def kill_gateway_mid_job(cli, log, data, gateway) -> tuple[str, set[int], int]:
    """Kill the gateway's process group once 5..half of the followed job's shards are done."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and cli.poll() is None:
        found = re.search(r"cleaning job (\S+)", log.read_text())
        if found:
            shards = data / "jobs" / found.group(1) / "shards"
            done = {int(p.name.split(".")[0]) for p in shards.glob("[0-9]*.done")} if shards.exists() else set()
            split = shards / "split.done"
            total = int(split.read_text()) if split.exists() else None
            if total and 5 <= len(done) < total // 2:
                os.killpg(gateway.process.pid, signal.SIGKILL)
                gateway.process.wait(30)
                return found.group(1), {int(p.name.split(".")[0]) for p in shards.glob("[0-9]*.done")}, total
        time.sleep(0.05)
    raise AssertionError(f"could not kill mid-run:\n{log.read_text()}")


def test_killed_cleaning_job_resumes_without_redoing_finished_shards(tmp_path):
    data, admin = tmp_path / "data", "rx-admin-" + secrets.token_hex(8)
    rng = random.Random(0)
    docs = [paragraph(i) for i in range(6000)]
    docs += [docs[rng.randrange(6000)] for _ in range(300)]  # duplicates across shards
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs))
    first = start_server(data, admin_key=admin)
    key = first.new_key("p")
    dataset = first.cli("data", "create", "corpus", str(corpus), key=key).stdout.strip().splitlines()[-1]
    log = tmp_path / "clean.log"
    cli = subprocess.Popen([RIXIN, "data", "clean", dataset, "--project", "p", "--shard-size", "60"],
                           stdout=log.open("w"), stderr=subprocess.STDOUT, env=first.cli_env(key))
    try:
        job_id, done_at_kill, total = kill_gateway_mid_job(cli, log, data, first)
        assert cli.wait(60) == 2 and f"--resume {job_id}" in log.read_text()  # says how to follow on
    finally:
        stop_server(first)
        if cli.poll() is None:
            cli.kill()
    assert len(done_at_kill) < total

    second = start_server(data, admin_key=admin)
    try:
        resumed = second.cli("data", "clean", dataset, "--project", "p", "--resume", job_id, key=key)
        assert "exact_duplicate" in resumed.stdout
        runs = Counter(int(line.split()[0]) for line in (data / "jobs" / job_id / "processed.log").read_text().splitlines())
        assert set(runs) == set(range(total))
        assert all(runs[i] == 1 for i in done_at_kill), "a finished shard was processed again"
        second.cli("data", "clean", dataset, "--version", "1", "--shard-size", "60", key=key)
        listed = second.cli("data", "list", key=key).stdout
        assert dataset in listed
        job = second.http(key).get(f"/v1/jobs/{job_id}").json()
        versions = second.http(key).get(f"/v1/datasets/{dataset}").json()["versions"]
    finally:
        stop_server(second)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[1]["records"] == versions[2]["records"]  # resumed run == uninterrupted run
    assert versions[1]["report"]["removed"]["exact_duplicate"] >= 250
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert job["progress"]["shards_skipped"] >= len(done_at_kill)
