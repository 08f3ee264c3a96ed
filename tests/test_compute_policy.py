"""The scheduling decision (compute/policy.py): worked examples of each rule, then properties
that must hold for any state, checked over seeded random clusters, queues and quotas."""

from __future__ import annotations

import random
from collections import defaultdict


from rixin.compute.policy import EPS, Pending, Quota, Running, decide

GPU = "gpu-a100"


def started(decision) -> set[str]:
    return {s.id for s in decision.start}


# ---------------------------------------------------------------- worked examples


def test_higher_priority_first_then_fifo_within_a_project():
    pending = [Pending("a", "p", {GPU: 2}, priority=0, created_at=1),
               Pending("b", "p", {GPU: 2}, priority=5, created_at=3),
               Pending("c", "p", {GPU: 2}, priority=0, created_at=2)]
    d = decide({GPU: 4}, pending, [], {})
    assert started(d) == {"b", "a"}
    assert "no free gpu-a100" in d.waiting["c"]


def test_borrowing_idle_capacity_up_to_the_borrow_limit():
    quotas = {"p": Quota(guaranteed={GPU: 2}, borrow_limit={GPU: 2}), "q": Quota(guaranteed={GPU: 6})}
    pending = [Pending(f"j{i}", "p", {GPU: 1}, created_at=i) for i in range(6)]
    d = decide({GPU: 8}, pending, [], quotas)
    assert [s.id for s in d.start] == ["j0", "j1", "j2", "j3"]
    assert [s.borrowed for s in d.start] == [False, False, True, True]
    assert "above guaranteed + borrow_limit (4)" in d.waiting["j4"]


def test_owner_reclaims_its_guarantee_by_preempting_the_cheapest_borrowed_work():
    quotas = {"p": Quota(guaranteed={GPU: 4}), "q": Quota(guaranteed={GPU: 4})}
    running = [Running("q0", "q", {GPU: 4}, borrowed=False),
               Running("q1", "q", {GPU: 2}, borrowed=True, work_since_checkpoint=50),
               Running("q2", "q", {GPU: 2}, borrowed=True, work_since_checkpoint=5)]
    d = decide({GPU: 8}, [Pending("p0", "p", {GPU: 2})], running, quotas)
    assert started(d) == {"p0"} and d.preempt == ["q2"]
    assert d.start[0].borrowed is False


def test_guaranteed_work_is_never_preempted_by_another_project():
    quotas = {"p": Quota(guaranteed={GPU: 4}), "q": Quota(guaranteed={GPU: 4})}
    running = [Running("q0", "q", {GPU: 4}, priority=100), Running("p0", "p", {GPU: 4}, priority=0)]
    d = decide({GPU: 8}, [Pending("q1", "q", {GPU: 2}, priority=100)], running, quotas)
    assert d.preempt == [] and d.start == []
    assert "no free gpu-a100" in d.waiting["q1"]


def test_borrowers_do_not_preempt_other_projects_but_a_project_preempts_its_own_lower_priority():
    quotas = {"p": Quota(), "q": Quota()}
    running = [Running("p-low", "p", {GPU: 4}, priority=0, borrowed=True),
               Running("q-low", "q", {GPU: 4}, priority=0, borrowed=True, work_since_checkpoint=0)]
    d = decide({GPU: 8}, [Pending("p-high", "p", {GPU: 4}, priority=9)], running, quotas)
    assert d.preempt == ["p-low"] and started(d) == {"p-high"}


def test_running_jobs_quota_and_a_class_no_node_has():
    quotas = {"p": Quota(running_jobs=1)}
    d = decide({GPU: 8}, [Pending("a", "p", {GPU: 1}, created_at=1), Pending("b", "p", {GPU: 1}, created_at=2),
                          Pending("c", "p", {"npu-910b": 1})], [], quotas)
    assert started(d) == {"a"}
    assert "running_jobs" in d.waiting["b"]
    assert d.waiting["c"] == "needs 1 npu-910b; the cluster has 0 in all"


def test_borrowers_are_served_by_fair_share():
    """Two projects with equal (zero) guarantees and deep queues end up with equal shares."""
    pending = [Pending(f"{p}{i}", p, {GPU: 1}, created_at=i) for p in "pq" for i in range(10)]
    d = decide({GPU: 8}, pending, [], {})
    got = defaultdict(int)
    for s in d.start:
        got[s.id[0]] += 1
    assert got == {"p": 4, "q": 4}


def test_work_that_cannot_checkpoint_is_never_a_victim():
    """A kind without checkpoints is not preemptible: the claim takes the preemptible borrowed
    work even though it has more work since its checkpoint, or waits when there is none."""
    quotas = {"p": Quota(guaranteed={GPU: 4}), "q": Quota()}
    running = [Running("q-eval", "q", {GPU: 4}, borrowed=True, preemptible=False),
               Running("q-train", "q", {GPU: 4}, borrowed=True, work_since_checkpoint=99)]
    d = decide({GPU: 8}, [Pending("p0", "p", {GPU: 4})], running, quotas)
    assert d.preempt == ["q-train"] and d.preempted_for == {"q-train": "p0"}
    d = decide({GPU: 8}, [Pending("p0", "p", {GPU: 4})], running[:1] + [Running(
        "q-label", "q", {GPU: 4}, borrowed=True, preemptible=False)], quotas)
    assert d.preempt == [] and "no free gpu-a100" in d.waiting["p0"]


def test_the_cheapest_victim_is_the_one_with_least_work_since_its_checkpoint():
    quotas = {"p": Quota(guaranteed={GPU: 2})}
    running = [Running(f"q{w}", "q", {GPU: 2}, borrowed=True, work_since_checkpoint=w) for w in (7, 3, 5)]
    d = decide({GPU: 6}, [Pending("p0", "p", {GPU: 2})], running, quotas)
    assert d.preempt == ["q3"] and d.preempted_for == {"q3": "p0"}


def test_decide_does_not_change_its_inputs():
    quotas = {"p": Quota(guaranteed={GPU: 4})}
    running = [Running("q0", "q", {GPU: 8}, borrowed=True)]
    pending = [Pending("p0", "p", {GPU: 4})]
    snapshot = (list(running), list(pending), dict(quotas))
    decide({GPU: 8}, pending, running, quotas)
    assert (running, pending, quotas) == snapshot


# ---------------------------------------------------------------- properties over random states

CLASSES = ("cpu", "gpu-a100", "gpu-h100")


def random_state(rng: random.Random):
    capacity = {c: float(rng.choice([0, 4, 8, 16, 64])) for c in CLASSES}
    projects = [f"p{i}" for i in range(rng.randint(1, 5))]
    quotas = {}
    left = dict(capacity)
    for p in projects:  # guarantees never add up to more than the cluster has
        g = {c: float(rng.randint(0, int(left[c]))) if rng.random() < 0.7 else 0.0 for c in CLASSES}
        for c in CLASSES:
            left[c] -= g[c]
        bl = {c: float(rng.randint(0, 16)) for c in CLASSES if rng.random() < 0.5}
        quotas[p] = Quota(guaranteed=g, borrow_limit=bl,
                          running_jobs=rng.choice([None, None, 1, 2, 5]))

    def demand():
        c = rng.choice(CLASSES)
        return {c: float(rng.choice([1, 1, 2, 4, 8]))} | ({"cpu": 1.0} if c != "cpu" else {})

    # running jobs: fill the cluster as a consistent earlier decision would have
    running, free = [], dict(capacity)
    usage = defaultdict(lambda: defaultdict(float))
    gused = defaultdict(lambda: defaultdict(float))
    for i in range(rng.randint(0, 30)):
        p, d = rng.choice(projects), demand()
        q = quotas[p]
        if any(n > free[c] for c, n in d.items()) or any(usage[p][c] + n > q.limit(c) for c, n in d.items()):
            continue
        if q.running_jobs is not None and sum(1 for r in running if r.project == p) >= q.running_jobs:
            continue
        borrowed = any(gused[p][c] + n > q.guaranteed.get(c, 0) for c, n in d.items())
        for c, n in d.items():
            free[c] -= n
            usage[p][c] += n
            if not borrowed:
                gused[p][c] += n
        running.append(Running(f"r{i}", p, d, rng.randint(0, 3), borrowed, rng.random() * 100))
    pending = [Pending(f"n{i}", rng.choice(projects), demand(), rng.randint(0, 3), rng.random())
               for i in range(rng.randint(0, 30))]
    return capacity, pending, running, quotas


def after(decision, pending, running):
    """The running set once the decision is applied."""
    by_id = {j.id: j for j in pending}
    kept = [r for r in running if r.id not in set(decision.preempt)]
    return kept + [Running(s.id, by_id[s.id].project, by_id[s.id].demand, by_id[s.id].priority, s.borrowed)
                   for s in decision.start]


def test_properties_hold_for_random_states():
    """Never over capacity or quota, every pending job starts or has a reason, guaranteed work
    is preempted only by its own project's higher priority, for 400 random states."""
    for s in range(400):
        rng = random.Random(s)
        capacity, pending, running, quotas = random_state(rng)
        d = decide(capacity, pending, running, quotas)
        check(d, capacity, pending, running, quotas, s)


def check(d, capacity, pending, running, quotas, seed):
    ids = {j.id for j in pending}
    # every pending job either starts or waits with a reason, never both
    assert started(d) | set(d.waiting) == ids, seed
    assert not started(d) & set(d.waiting), seed
    assert all(d.waiting.values()), seed
    # only running jobs are preempted, each once
    assert set(d.preempt) <= {r.id for r in running} and len(set(d.preempt)) == len(d.preempt), seed
    now = after(d, pending, running)
    used = defaultdict(float)
    per = defaultdict(lambda: defaultdict(float))
    guaranteed = defaultdict(lambda: defaultdict(float))
    count = defaultdict(int)
    for r in now:
        count[r.project] += 1
        for c, n in r.demand.items():
            used[c] += n
            per[r.project][c] += n
            if not r.borrowed:
                guaranteed[r.project][c] += n
    for c, n in used.items():  # never over capacity
        assert n <= capacity.get(c, 0) + EPS, (seed, c)
    for p, q in quotas.items():
        for c in CLASSES:  # never over quota; guaranteed work stays within the guarantee
            newly = [s for s in d.start if s.id in ids]
            if newly:
                assert guaranteed[p][c] <= q.guaranteed.get(c, 0) + EPS, (seed, p, c)
        started_p = [j for j in pending if j.id in started(d) and j.project == p]
        if started_p:
            for c in CLASSES:
                assert per[p][c] <= q.limit(c) + EPS, (seed, p, c)
            if q.running_jobs is not None:
                assert count[p] <= q.running_jobs, seed
    by_id = {r.id: r for r in running}
    pend = {j.id: j for j in pending}
    for v in d.preempt:  # guaranteed work is only ever preempted by its own project's higher priority
        victim = by_id[v]
        if not victim.borrowed:
            assert any(pend[s.id].project == victim.project and pend[s.id].priority > victim.priority
                       for s in d.start), (seed, v)


def test_a_claim_always_starts_by_preemption_when_guarantees_fit_the_cluster():
    """A job within its project's guarantee (and running_jobs) starts, whatever other projects'
    borrowed work fills the cluster: guarantees add up to at most the capacity, so preemption
    makes room."""
    claims = 0
    for seed in range(600):
        rng = random.Random(seed)
        capacity, pending, running, quotas = random_state(rng)
        for job in pending[:3]:
            q = quotas[job.project]
            mine = [r for r in running if r.project == job.project]
            g = defaultdict(float)
            for r in mine:
                for c, n in r.demand.items():
                    g[c] += 0 if r.borrowed else n
            # (the project's own borrowed work of higher or equal priority is not taken back)
            if (all(g[c] + n <= q.guaranteed.get(c, 0) for c, n in job.demand.items())
                    and (q.running_jobs is None or len(mine) < q.running_jobs)
                    and not any(r.borrowed and r.priority >= job.priority for r in mine)):
                claims += 1
                d = decide(capacity, [job], running, quotas)
                assert started(d) == {job.id}, (seed, d.waiting)
                victims = [r for r in running if r.id in d.preempt]
                assert all(v.borrowed or (v.project == job.project and v.priority < job.priority)
                           for v in victims), seed
    assert claims > 50  # the random states do exercise claims


def test_preemption_never_takes_more_than_needed():
    """Each victim is needed: giving any one back would leave a started job unable to run."""
    for seed in range(300):
        rng = random.Random(seed)
        capacity, pending, running, quotas = random_state(rng)
        d = decide(capacity, pending, running, quotas)
        if not d.preempt:
            continue
        now = after(d, pending, running)
        for v in d.preempt:
            victim = next(r for r in running if r.id == v)
            used = defaultdict(float)
            for r in now + [victim]:
                for c, n in r.demand.items():
                    used[c] += n
            over_capacity = any(used[c] > capacity[c] + EPS for c in victim.demand)
            same_project_limit = any(r.project == victim.project for r in now if r.id in started(d))
            assert over_capacity or same_project_limit, (seed, v)


def test_victims_are_preemptible_and_each_names_the_job_it_makes_room_for():
    """Over random states where some running work cannot checkpoint: such work is never
    preempted, and every victim is mapped to a job that starts in the same decision."""
    from dataclasses import replace

    for seed in range(300):
        rng = random.Random(seed)
        capacity, pending, running, quotas = random_state(rng)
        running = [replace(r, preemptible=rng.random() < 0.6) for r in running]
        d = decide(capacity, pending, running, quotas)
        check(d, capacity, pending, running, quotas, seed)
        fixed = {r.id for r in running if not r.preemptible}
        assert not fixed & set(d.preempt), seed
        assert set(d.preempted_for) == set(d.preempt) and set(d.preempted_for.values()) <= started(d), seed
