"""`rixin quota show|set` and `rixin usage` against a real gateway (Server.cli: RIXIN_BASE_URL
and RIXIN_API_KEY), and the quota route's refusal of guarantees the cluster cannot keep."""

from __future__ import annotations

import json
import time

import pytest

from conftest import CHAT

pytestmark = pytest.mark.timeout(300)


def new_project(server, name: str) -> None:
    """A project without a key (the admin API; quicker than `rixin keys create`)."""
    with server.http() as http:
        assert http.post("/v1/organization/projects", json={"name": name}).status_code == 200


def quota(server, project: str) -> dict:
    with server.http() as http:
        return http.get(f"/v1/organization/projects/{project}/quota").json()


def guaranteed_slots(server) -> float:
    """Job slots guaranteed over every project of the (shared) gateway, and its job slots."""
    with server.http() as http:
        ids = [p["id"] for p in http.get("/v1/organization/projects").json()["data"]]
        return sum(quota(server, p)["guaranteed"].get("job_slot", 0.0) for p in ids)


def test_quota_set_takes_human_units_and_show_prints_them(server):
    new_project(server, "cli-quota")
    out = server.cli("quota", "set", "cli-quota", "--guaranteed", "gpu=1", "--borrow-limit", "gpu=2,job_slot=1",
                     "--running-jobs", "3", "--storage-bytes", "10GB", "--budget", "50").stdout
    assert "cli-quota" in out and "10 GB" in out, out
    got = quota(server, "cli-quota")
    assert got["guaranteed"] == {"GPU": 1.0} and got["borrow_limit"] == {"GPU": 2.0, "job_slot": 1.0}, got
    assert (got["running_jobs"], got["storage_bytes"], got["budget"]) == (3, 10**10, 50.0), got
    # Options not given stay as they are; 'none' removes a limit.
    server.cli("quota", "set", "cli-quota", "--storage-bytes", "1.5GiB", "--budget", "none")
    got = quota(server, "cli-quota")
    assert (got["running_jobs"], got["storage_bytes"], got["budget"]) == (3, 3 * 2**29, None), got
    assert got["guaranteed"] == {"GPU": 1.0}
    shown = json.loads(server.cli("quota", "show", "cli-quota", "--json").stdout)
    assert shown["project"] == "cli-quota" and shown["storage_bytes"] == 3 * 2**29
    everyone = server.cli("quota", "show").stdout
    assert "cli-quota" in everyone and "1.5 GiB" in everyone, everyone


@pytest.mark.parametrize("args, says", [
    (("--storage-bytes", "10 parsecs"), "is not a size"),
    (("--guaranteed", "gpu"), "is not CLASS=AMOUNT"),
    (("--guaranteed", "gpu=-1"), "is not CLASS=AMOUNT"),
    (("--running-jobs", "0"), "give a number ≥ 1"),
    (("--budget", "lots"), "give a number ≥ 0"),
    ((), "Nothing to set"),
])
def test_quota_set_refuses_bad_input_with_exit_status_2(server, args, says):
    new_project(server, "cli-quota-bad")
    before = quota(server, "cli-quota-bad")
    result = server.cli("quota", "set", "cli-quota-bad", *args, check=False)
    assert result.returncode == 2 and says in result.stderr, (result.returncode, result.stderr)
    assert quota(server, "cli-quota-bad") == before


def test_quota_of_an_unknown_project_and_a_project_key_are_refused(server):
    result = server.cli("quota", "show", "no-such-project", check=False)
    assert result.returncode == 2 and "no-such-project" in result.stderr, result.stderr
    key = server.new_key("cli-quota-user")
    result = server.cli("quota", "set", "cli-quota-user", "--budget", "1", key=key, check=False)
    assert result.returncode == 2 and "admin" in result.stderr, result.stderr


def test_guarantees_over_the_clusters_capacity_are_refused_saying_by_how_much(server):
    new_project(server, "lender")
    new_project(server, "greedy")
    with server.http() as http:
        slots = http.get("/v1/cluster").json()["limits"]["job_slots"]
    free = slots - guaranteed_slots(server)
    assert free >= 1, "another test left the shared gateway's job slots guaranteed"
    server.cli("quota", "set", "lender", "--guaranteed", f"job_slot={free:g}")
    refused = server.cli("quota", "set", "greedy", "--guaranteed", "job_slot=1", check=False)
    assert refused.returncode == 2, refused.stderr
    assert f"1 more than the cluster's {slots:g}" in refused.stderr, refused.stderr
    assert quota(server, "greedy")["guaranteed"] == {}
    with server.http() as http:  # the API answer behind it
        r = http.put("/v1/organization/projects/greedy/quota", json={"guaranteed": {"job_slot": 2}})
        error = r.json()["error"]
        assert r.status_code == 400 and error["code"] == "guarantee_exceeds_capacity", r.text
        assert error["param"] == "guaranteed" and "2 more than" in error["message"]
        # A class no node has (yet) is accepted; a guarantee that does not grow is too.
        assert http.put("/v1/organization/projects/greedy/quota",
                        json={"guaranteed": {"NO_SUCH_ACCEL": 4}}).status_code == 200
        assert http.put("/v1/organization/projects/lender/quota",
                        json={"guaranteed": {"job_slot": free}, "budget": 5}).status_code == 200
    server.cli("quota", "set", "lender", "--guaranteed", "")  # giving it back makes room
    server.cli("quota", "set", "greedy", "--guaranteed", "job_slot=1")
    assert quota(server, "greedy")["guaranteed"] == {"job_slot": 1.0}
    server.cli("quota", "set", "greedy", "--guaranteed", "")


def test_usage_table_and_json_match_what_clients_were_told(server):
    key = server.new_key("cli-usage")
    with server.http() as http:
        assert http.post(f"/v1/organization/prices/{CHAT}",
                         json={"input_per_1m": 3.0, "output_per_1m": 5.0}).status_code == 200
    client = server.client(key)
    told = [client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": f"Say {w}."}],
                                           max_tokens=4).usage for w in ("yes", "no")]
    inputs, outputs = sum(u.prompt_tokens for u in told), sum(u.completion_tokens for u in told)
    rows = json.loads(server.cli("usage", "--project", "cli-usage", "--group-by", "model", "--json").stdout)
    assert [r["key"] for r in rows] == [CHAT], rows
    assert (rows[0]["requests"], rows[0]["input_tokens"], rows[0]["output_tokens"]) == (2, inputs, outputs)
    assert rows[0]["cost"] == pytest.approx((3.0 * inputs + 5.0 * outputs) / 1e6)
    by_day = json.loads(server.cli("usage", "--project", "cli-usage", "--group-by", "day", "--days", "2",
                                   "--json").stdout)
    assert len(by_day) == 1 and by_day[0]["input_tokens"] == inputs, by_day
    table = server.cli("usage", "--project", "cli-usage", "--group-by", "project").stdout
    assert "cli-usage" in table and f"{inputs:,}" in table and "total" in table, table
    # A project key sees its own project (also without --project) and no other.
    mine = json.loads(server.cli("usage", "--group-by", "project", "--json", key=key).stdout)
    assert [(r["key"], r["input_tokens"]) for r in mine] == [("cli-usage", inputs)], mine
    other = server.cli("usage", "--project", "default", key=key, check=False)
    assert other.returncode == 2 and "default" in other.stderr, other.stderr
    # What it reads: /v1/me/ (any key, its own project; the Admin API stays admin-only)
    today = {"start_time": int(time.time()) // 86400 * 86400, "group_by": "project_id"}
    with server.http(key) as http:
        results = [r for b in http.get("/v1/me/usage/completions", params=today).json()["data"] for r in b["results"]]
        assert [r["input_tokens"] for r in results] == [inputs], results
        me = http.get("/v1/me").json()["project_id"]
        assert {r["project_id"] for r in results} == {me}
        other = http.get("/v1/me/costs", params={**today, "project_ids": "proj-someone-else"})
        assert other.status_code == 403 and "own project" in other.json()["error"]["message"]
        assert http.get("/v1/organization/usage/completions", params=today).status_code == 403
    bad = server.cli("usage", "--group-by", "week", check=False)
    assert bad.returncode == 2 and "week" in bad.stderr
