"""A cleaning job killed halfway (kill -9 of the whole process group, Ray included) and
resumed does not redo finished shards, and ends with the same result as an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter

from conftest import RIXIN
from test_datasets import paragraph


def rixin(data_dir, *args, **kwargs):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RIXIN_")}, "PYTHONUNBUFFERED": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([RIXIN, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          env=env, timeout=600, **kwargs)


def test_killed_cleaning_job_resumes_without_redoing_finished_shards(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(0)
    docs = [paragraph(i) for i in range(6000)]
    docs += [docs[rng.randrange(6000)] for _ in range(300)]  # duplicates across shards
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs))
    created = rixin(data, "data", "create", "corpus", str(corpus), "--project", "p")
    assert created.returncode == 0, created.stderr
    dataset = created.stdout.strip().splitlines()[-1]

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env = {k: v for k, v in env.items() if not k.startswith("RIXIN_")}
    log = (tmp_path / "clean.log").open("w")
    proc = subprocess.Popen([RIXIN, "data", "clean", dataset, "--project", "p", "--shard-size", "60",
                             "--data-dir", str(data)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    job_id, done_at_kill, total = None, set(), None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        text = (tmp_path / "clean.log").read_text()
        found = re.search(r"cleaning job (\S+)", text)
        if found:
            job_id = found.group(1)
            shards = data / "jobs" / job_id / "shards"
            done = {int(p.name.split(".")[0]) for p in shards.glob("[0-9]*.done")} if shards.exists() else set()
            split = shards / "split.done"
            total = int(split.read_text()) if split.exists() else None
            if total and 5 <= len(done) < total // 2:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                done_at_kill = {int(p.name.split(".")[0]) for p in shards.glob("[0-9]*.done")}
                break
        time.sleep(0.05)
    assert job_id and done_at_kill, f"could not kill mid-run:\n{(tmp_path / 'clean.log').read_text()}"
    assert len(done_at_kill) < total

    resumed = rixin(data, "data", "clean", dataset, "--project", "p", "--resume", job_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    runs = Counter(int(line.split()[0]) for line in (data / "jobs" / job_id / "processed.log").read_text().splitlines())
    assert set(runs) == set(range(total))
    assert all(runs[i] == 1 for i in done_at_kill), "a finished shard was processed again"

    fresh = rixin(data, "data", "clean", dataset, "--project", "p", "--version", "1", "--shard-size", "60")
    assert fresh.returncode == 0, fresh.stderr
    report = rixin(data, "data", "list", "--project", "p")
    assert report.returncode == 0
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{data / 'rixin.db'}")
    with engine.connect() as conn:
        versions = conn.execute(sqlalchemy.text(
            "SELECT version, records, report FROM dataset_versions ORDER BY version")).all()
        job = conn.execute(sqlalchemy.text("SELECT status, progress, attempts FROM jobs WHERE id = :id"),
                           {"id": job_id}).one()
    engine.dispose()
    assert [v[0] for v in versions] == [1, 2, 3]
    assert versions[1][1] == versions[2][1]  # resumed run == uninterrupted run
    resumed_report = json.loads(versions[1][2]) if isinstance(versions[1][2], str) else versions[1][2]
    assert resumed_report["removed"]["exact_duplicate"] >= 250
    progress = json.loads(job[1]) if isinstance(job[1], str) else job[1]
    assert job[0] == "succeeded" and job[2] == 2 and progress["shards_skipped"] >= len(done_at_kill)
