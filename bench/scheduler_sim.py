"""A trace-driven simulation of the shared compute (issue 12 item 7): the SAME scheduling
function the gateway's job runner calls (rixin.compute.policy.decide) over 1,000 nodes x 8
accelerators of 3 classes and 10,000 jobs, side by side with FIFO and strict priority.

Workload (seeded, identical for every policy): Poisson arrivals; heavy-tailed sizes (1-64
accelerators) and lengths (lognormal, capped at 48 h); 20 projects with Zipf-skewed demand
and guarantees that add up to the cluster; random node failures (a node's running work is
lost back to its last checkpoint and the job queues again; the node returns after repair).

The baselines are given first-fit backfill (a waiting job never blocks a smaller one behind
it), the strongest form a user would run; they know no quotas and never preempt.

Reported per policy: utilisation (busy accelerator-hours / up accelerator-hours while work
waits), Jain's fairness over entitled shares (each project's allocation over its weighted
max-min fair share, capped by its demand), queueing delay p50/p99 (all jobs, and jobs within
their project's entitlement), preemptions and accelerator-hours of work lost.

    .venv/bin/python bench/scheduler_sim.py [--jobs 10000] [--nodes 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (bench/ is not a package)

from rixin.compute.policy import Decision, Pending, Quota, Running, Start, decide  # noqa: E402

CLASSES = {"H100": 0.3, "A100": 0.4, "NPU-910B": 0.3}  # share of the nodes
SIZES = [(1, 0.30), (2, 0.20), (4, 0.20), (8, 0.15), (16, 0.08), (32, 0.05), (64, 0.02)]
HOUR = 3600.0
TICK = 300.0  # the scheduler decides every 5 simulated minutes (the runner polls, too)
CHECKPOINT = 1800.0  # jobs checkpoint every 30 minutes: a preemption or failure loses up to that
MTBF = 30 * 24 * HOUR  # per node
REPAIR = 4 * HOUR
LOAD = 1.05  # offered accelerator-hours per hour over capacity: work always waits somewhere


@dataclass
class Job:
    id: str
    project: str
    cls: str
    size: int
    length: float  # seconds of work
    arrival: float
    priority: int
    entitled: bool = False  # within its project's guarantee at arrival (policy-independent)
    done: float = 0.0  # work finished and checkpointed-or-running, seconds
    started: float | None = None  # current run's start
    first_start: float | None = None
    finish: float | None = None
    preemptions: int = 0


@dataclass
class Result:
    name: str
    busy: list = field(default_factory=list)  # (time, busy fraction, busy fraction where work waits)
    fairness: list = field(default_factory=list)
    preemptions: int = 0
    failures_hit: int = 0
    lost_hours: float = 0.0
    delays: list = field(default_factory=list)
    entitled_delays: list = field(default_factory=list)
    decide_s: float = 0.0
    decisions: int = 0
    unfinished: int = 0


# ---------------------------------------------------------------------------- the workload


def workload(n_jobs: int, nodes: int, seed: int):
    rng = random.Random(seed)
    capacity = {c: float(round(nodes * share) * 8) for c, share in CLASSES.items()}
    projects = [f"proj{i:02d}" for i in range(20)]
    demand_w = [1 / (i + 1) ** 1.1 for i in range(20)]  # Zipf-skewed demand
    entitle_w = [math.sqrt(w) for w in demand_w]  # guarantees flatter than demand: sharing matters
    total_e = sum(entitle_w)
    quotas, guarantee = {}, {}
    for p, e in zip(projects, entitle_w):
        g = {c: math.floor(cap * e / total_e) for c, cap in capacity.items()}
        quotas[p] = Quota(guaranteed=g)
        guarantee[p] = g
    prefs = {p: rng.choices(list(CLASSES), k=1)[0] for p in projects}  # each project's usual class
    mean_size = sum(s * w for s, w in SIZES)
    mean_len = 2 * HOUR * math.exp(1.2 ** 2 / 2)
    rate = LOAD * sum(capacity.values()) / (mean_size * mean_len)  # jobs per second
    jobs, t = [], 0.0
    for i in range(n_jobs):
        t += rng.expovariate(rate)
        p = rng.choices(projects, weights=demand_w)[0]
        cls = prefs[p] if rng.random() < 0.8 else rng.choice(list(CLASSES))
        size = rng.choices([s for s, _ in SIZES], weights=[w for _, w in SIZES])[0]
        length = min(48 * HOUR, max(60.0, rng.lognormvariate(math.log(2 * HOUR), 1.2)))
        prio = rng.choices([0, 1, 2, 3], weights=[0.6, 0.25, 0.1, 0.05])[0]
        jobs.append(Job(f"j{i}", p, cls, size, length, t, prio))
    mark_entitled(jobs, guarantee)
    failures, ft = [], 0.0
    while True:  # node failures: Poisson over the whole cluster
        ft += rng.expovariate(nodes / MTBF)
        if ft > t + 48 * HOUR:
            break
        failures.append((ft, rng.choices(list(CLASSES), weights=list(CLASSES.values()))[0]))
    return capacity, quotas, guarantee, jobs, failures


def mark_entitled(jobs: list[Job], guarantee: dict) -> None:
    """A job is within its project's entitlement if the project's offered load in its class
    (every job of the project that would be running had each started on arrival) fits the
    guarantee: a definition that does not depend on any policy's choices."""
    events = sorted([(j.arrival, 1, j) for j in jobs] + [(j.arrival + j.length, -1, j) for j in jobs],
                    key=lambda e: (e[0], e[1]))
    offered = defaultdict(float)
    for _, sign, j in events:
        offered[j.project, j.cls] += sign * j.size
        if sign > 0:
            j.entitled = offered[j.project, j.cls] <= guarantee[j.project][j.cls]


# ---------------------------------------------------------------------------- the baselines


def first_fit(order: list[Pending], capacity: dict, running: list[Running]) -> Decision:
    free = dict(capacity)
    for r in running:
        for c, n in r.demand.items():
            free[c] -= n
    out = Decision()
    for job in order:
        if all(free.get(c, 0.0) >= n for c, n in job.demand.items()):
            for c, n in job.demand.items():
                free[c] -= n
            out.start.append(Start(job.id, borrowed=False))
        else:
            out.waiting[job.id] = "no room"
    return out


def fifo(capacity, pending, running, quotas) -> Decision:
    return first_fit(sorted(pending, key=lambda j: (j.created_at, j.id)), capacity, running)


def strict_priority(capacity, pending, running, quotas) -> Decision:
    return first_fit(sorted(pending, key=lambda j: (-j.priority, j.created_at, j.id)), capacity, running)


POLICIES = {"rixin": decide, "fifo": fifo, "strict-priority": strict_priority}


# ---------------------------------------------------------------------------- the simulation


def fair_targets(capacity: float, demand: dict, weight: dict) -> dict:
    """Weighted max-min fair shares of `capacity` among projects capped by their demand."""
    target, left, active = {}, capacity, {p for p, d in demand.items() if d > 0}
    while active and left > 1e-9:
        w = sum(weight[p] for p in active)
        share = {p: left * weight[p] / w for p in active}
        full = {p for p in active if demand[p] - target.get(p, 0.0) <= share[p]}
        if not full:
            for p in active:
                target[p] = target.get(p, 0.0) + share[p]
            break
        for p in full:
            left -= demand[p] - target.get(p, 0.0)
            target[p] = demand[p]
        active -= full
    return target


def jain(values: list[float]) -> float | None:
    if not values:
        return None
    s, sq = sum(values), sum(v * v for v in values)
    return s * s / (len(values) * sq) if sq > 0 else 1.0


def simulate(name: str, policy, capacity, quotas, guarantee, jobs: list[Job], failures) -> Result:
    jobs = [Job(j.id, j.project, j.cls, j.size, j.length, j.arrival, j.priority, j.entitled) for j in jobs]
    res, by_id = Result(name), {j.id: j for j in jobs}
    up = dict(capacity)
    queue: dict[str, Job] = {}
    running: dict[str, tuple[Job, bool]] = {}  # id → (job, borrowed)
    ends: list = []  # heap of (end time, job id, run start) — stale entries skipped
    repairs: list = []
    arrivals, fails, t = 0, 0, 0.0
    last_arrival = jobs[-1].arrival
    rng = random.Random(1)
    weight = {p: sum(g.values()) for p, g in guarantee.items()}
    while arrivals < len(jobs) or queue or running:
        t += TICK
        while arrivals < len(jobs) and jobs[arrivals].arrival <= t:
            queue[jobs[arrivals].id] = jobs[arrivals]
            arrivals += 1
        while ends and ends[0][0] <= t:
            end, jid, began = heapq.heappop(ends)
            if jid in running and running[jid][0].started == began:
                job = running.pop(jid)[0]
                job.done, job.finish = job.length, end
        while repairs and repairs[0][0] <= t:
            _, cls = heapq.heappop(repairs)
            up[cls] += 8
        while fails < len(failures) and failures[fails][0] <= t:
            _, cls = failures[fails]
            fails += 1
            fail_node(res, cls, t, up, running, queue, rng)
            heapq.heappush(repairs, (t + REPAIR, cls))
        if t > last_arrival + 60 * 24 * HOUR:  # safety: a policy that starves work must still end
            res.unfinished = len(queue) + len(running)
            break
        decision = run_policy(res, policy, up, queue, running, quotas, t)
        for jid in decision.preempt:
            job, _ = running.pop(jid)
            stop(res, job, t, preempted=True)
            queue[jid] = job
        for s in decision.start:
            job = queue.pop(s.id)
            job.started = t
            job.first_start = job.first_start if job.first_start is not None else t
            running[s.id] = (job, s.borrowed)
            heapq.heappush(ends, (t + job.length - job.done, s.id, t))
        sample(res, t, up, running, queue, weight, last_arrival)
    for j in jobs:
        if j.first_start is not None:
            res.delays.append(j.first_start - j.arrival)
            if j.entitled:
                res.entitled_delays.append(j.first_start - j.arrival)
    return res


def run_policy(res: Result, policy, up, queue, running, quotas, t) -> Decision:
    pending = [Pending(j.id, j.project, {j.cls: float(j.size)}, j.priority, j.arrival) for j in queue.values()]
    live = [Running(j.id, j.project, {j.cls: float(j.size)}, j.priority, borrowed,
                    (t - j.started) % CHECKPOINT) for j, borrowed in running.values()]
    t0 = time.perf_counter()
    decision = policy(up, pending, live, quotas)
    res.decide_s += time.perf_counter() - t0
    res.decisions += 1
    return decision


def stop(res: Result, job: Job, t: float, *, preempted: bool) -> None:
    """A running job stops: what it did since its last checkpoint is lost."""
    ran = t - job.started
    lost = ran % CHECKPOINT
    job.done += ran - lost
    job.started = None
    res.lost_hours += lost * job.size / HOUR
    if preempted:
        res.preemptions += 1
        job.preemptions += 1


def fail_node(res: Result, cls: str, t: float, up, running, queue, rng) -> None:
    """A node of `cls` fails: jobs holding about 8 of its accelerators (picked at random,
    weighted by size) stop and queue again; the node's capacity is gone until repaired."""
    up[cls] -= 8
    on_class = [jid for jid, (j, _) in running.items() if j.cls == cls]
    rng.shuffle(on_class)
    freed, used = 0, sum(running[j][0].size for j in on_class)
    for jid in on_class:
        if freed >= 8 and used - freed <= up[cls]:
            break
        job, _ = running.pop(jid)
        stop(res, job, t, preempted=False)
        res.failures_hit += 1
        queue[jid] = job
        freed += job.size


def sample(res: Result, t, up, running, queue, weight, last_arrival) -> None:
    if t > last_arrival:
        return
    busy, alloc, dem = defaultdict(float), defaultdict(lambda: defaultdict(float)), defaultdict(
        lambda: defaultdict(float))
    for j, _ in running.values():
        busy[j.cls] += j.size
        alloc[j.cls][j.project] += j.size
        dem[j.cls][j.project] += j.size
    waiting = set()
    for j in queue.values():
        dem[j.cls][j.project] += j.size
        waiting.add(j.cls)
    # utilisation where it is owed: over the classes that have work waiting (None if none has)
    owed = sum(up[c] for c in waiting)
    res.busy.append((t, sum(busy.values()) / max(sum(up.values()), 1.0),
                     sum(busy[c] for c in waiting) / owed if owed else None))
    for cls, cap in up.items():
        targets = fair_targets(cap, dem[cls], weight)
        xs = [alloc[cls][p] / tg for p, tg in targets.items() if tg > 0]
        f = jain(xs)
        if f is not None:
            res.fairness.append(f)


# ---------------------------------------------------------------------------- the report


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(res: Result, warm: float) -> dict:
    util = [u for t, _, u in res.busy if t >= warm and u is not None]
    cluster = [b for t, b, _ in res.busy if t >= warm]
    hours = lambda v: None if v is None else round(v / HOUR, 3)  # noqa: E731
    return {
        "policy": res.name,
        "utilisation": round(sum(util) / len(util), 4) if util else None,
        "cluster_busy": round(sum(cluster) / len(cluster), 4) if cluster else None,
        "jain_fairness": round(sum(res.fairness) / len(res.fairness), 4) if res.fairness else None,
        "delay_p50_h": hours(pct(res.delays, 0.5)), "delay_p99_h": hours(pct(res.delays, 0.99)),
        "entitled_delay_p50_h": hours(pct(res.entitled_delays, 0.5)),
        "entitled_delay_p99_h": hours(pct(res.entitled_delays, 0.99)),
        "entitled_jobs": len(res.entitled_delays),
        "preemptions": res.preemptions, "failure_restarts": res.failures_hit,
        "work_lost_accel_h": round(res.lost_hours, 1), "unfinished": res.unfinished,
        "decisions": res.decisions, "decide_ms_mean": round(1000 * res.decide_s / max(res.decisions, 1), 2),
    }


def markdown(rows: list[dict], meta: dict) -> str:
    cols = ["policy", "utilisation", "cluster_busy", "jain_fairness", "delay_p50_h", "delay_p99_h", "entitled_delay_p50_h",
            "entitled_delay_p99_h", "preemptions", "failure_restarts", "work_lost_accel_h", "decide_ms_mean"]
    lines = [f"# Scheduler simulation ({meta['date']})", "", f"Command: `{meta['command']}`", "",
             f"{meta['nodes']} nodes x 8 accelerators ({', '.join(f'{c}: {int(n)}' for c, n in meta['capacity'].items())}), "
             f"{meta['jobs']} jobs over {meta['span_h']:.0f} h, 20 projects, {meta['failures']} node failures, "
             f"offered load {LOAD}. Utilisation: busy / up accelerators of the classes where work waits, "
             "sampled every tick after the first 10% of the span; cluster_busy: busy / up over all classes "
             "(a class nobody is waiting for idles under every policy). "
             "Delays in hours; 'entitled' = jobs within their project's guarantee at arrival.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    a = meta["admission"]
    lines += ["", f"Wall time: {meta['wall_s']:.1f} s on {meta['machine']['nproc']} cores "
              f"(load average {meta['load_avg']}).", "",
              f"Scheduler overhead on a job's start in the gateway (SQLite, {a['queued']} queued jobs of 10 "
              f"projects, median of {a['repeats']}): decision {a['plan_ms_median']} ms (rows, quotas, policy), "
              f"atomic claim {a['claim_ms_median']} ms (load average {a['load_avg']}).", ""]
    return "\n".join(lines)


def plot(stem: Path, results: list[Result], warm: float) -> Path:
    plt = common.start_plot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for res in results:
        ts = [t / HOUR for t, _, _ in res.busy]
        a.plot(ts, [u for _, u, _ in res.busy], label=res.name, lw=0.8)
        d = sorted(x / HOUR for x in res.entitled_delays)
        b.plot(d, [i / max(len(d), 1) for i in range(len(d))], label=f"{res.name} (entitled jobs)")
    a.set_xlabel("simulated hours"), a.set_ylabel("busy / up accelerators"), a.set_title("utilisation")
    a.axvline(warm / HOUR, color="grey", ls=":")
    b.set_xscale("symlog", linthresh=0.1), b.set_xlabel("queueing delay (h)"), b.set_ylabel("CDF")
    b.set_title("queueing delay of jobs within their guarantee")
    a.legend(), b.legend()
    fig.tight_layout()
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=110)
    return path


def admission_overhead(queued: int = 100, repeats: int = 30) -> dict:
    """What the scheduler adds to a job's start in the gateway: one `jobs.runner.plan` (read the
    queued and running rows and the quotas, decide) over a SQLite store holding `queued` jobs
    of 10 projects, then one atomic claim. Median over `repeats`, in ms."""
    import statistics
    import tempfile

    from rixin.compute.quotas import Quotas
    from rixin.jobs.runner import plan
    from rixin.jobs.store import JobStore
    from rixin.store.db import Database
    from rixin.store.tenancy import Tenancy

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/sim.db")
        db.migrate()
        jobs, tenancy, quotas = JobStore(db), Tenancy(db), Quotas(db)
        callers = [tenancy.authenticate(tenancy.create_key(f"team{i}").key) for i in range(10)]
        for i in range(queued):
            jobs.create(callers[i % 10], "clean", {"priority": i % 3})
        plans, claims = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            decision = plan(jobs, quotas, {"clean"}, 4, 2, set())
            t1 = time.perf_counter()
            claimed = jobs.claim(decision.start[0].id, running_limit=2)
            t2 = time.perf_counter()
            plans.append((t1 - t0) * 1000)
            claims.append((t2 - t1) * 1000)
            jobs.set_status(claimed.id, "queued")  # back in the queue: every repeat sees the same state
        db.dispose()
    return {"queued": queued, "repeats": repeats, "plan_ms_median": round(statistics.median(plans), 2),
            "claim_ms_median": round(statistics.median(claims), 2), "load_avg": common.load_avg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=common.RESULTS)
    args = ap.parse_args()
    t0 = time.perf_counter()
    capacity, quotas, guarantee, jobs, failures = workload(args.jobs, args.nodes, args.seed)
    results = [simulate(name, fn, capacity, quotas, guarantee, jobs, failures) for name, fn in POLICIES.items()]
    warm = 0.1 * jobs[-1].arrival
    rows = [summary(r, warm) for r in results]
    overhead = admission_overhead()
    meta = {"date": common.today(), "command": common.command("scheduler_sim.py"), "nodes": args.nodes,
            "capacity": capacity, "jobs": len(jobs), "span_h": jobs[-1].arrival / HOUR, "failures": len(failures),
            "seed": args.seed, "wall_s": time.perf_counter() - t0, "load_avg": common.load_avg(),
            "machine": common.machine(), "admission": overhead}
    stem = common.results_stem("scheduler-sim", out=args.out)
    common.write_json(stem, {"meta": meta, "results": rows})
    common.write_markdown(stem, markdown(rows, meta))
    plot(stem, results, warm)
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
