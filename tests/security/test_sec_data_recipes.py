"""A cleaning request never makes the server read a path it names (issue 18, finding 1).

Before: `POST /v1/datasets/{id}/clean {"recipe": "/etc/shadow"}` answered 400 quoting the
file's first line as an "unknown key", YAML errors echoed lines of other files, and a missing
path answered differently from an existing one (an existence oracle). Now a recipe is a
packaged name, a recipe stored in the project (POST /v1/recipes) or an inline object; every
other string gets the same 400, whatever exists on the server's disk."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import rixin.data

PROBES = ["/etc/shadow", "/etc/passwd", "/proc/self/status", "../../etc/passwd", "/nonexistent/recipe.yaml",
          "missing.yaml", str(Path(rixin.data.__file__).parent / "recipes" / "default.yaml"),
          "file:///etc/passwd", "recipes/../../../../etc/hostname", "/dev/zero", "~/.bashrc"]
FILE_CONTENT = ["root:", "Name:", "State:", "VmPeak", "Unknown key", "unknown key", "not valid YAML",
                "no recipe file", "x:0:0"]


@pytest.fixture(scope="module")
def project(server):
    key = server.new_key("sec-data-recipes")
    http = server.http(key)
    file_id = server.client(key).files.create(file=("t.txt", io.BytesIO(b"one two three four five\n")),
                                              purpose="user_data").id
    dataset = http.post("/v1/datasets", json={"name": "probe", "files": [file_id]}).json()
    return server, http, dataset["id"]


def test_a_recipe_path_is_never_read_and_answers_the_same_whether_it_exists_or_not(project):
    _, http, dataset_id = project
    answers = {}
    for probe in PROBES:
        r = http.post(f"/v1/datasets/{dataset_id}/clean", json={"recipe": probe})
        assert r.status_code == 400, (probe, r.text)
        body = r.json()
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "recipe"
        assert not any(s in r.text for s in FILE_CONTENT), (probe, r.text)
        assert "default" in body["error"]["message"] and "short" in body["error"]["message"]
        answers[probe] = r.content
    # byte-identical answers: existing files, missing files and directories are indistinguishable
    assert len(set(answers.values())) == 1, answers
    assert http.get("/v1/jobs").status_code == 200 and not [
        j for j in http.get("/v1/jobs").json()["data"] if j["kind"] == "clean"]


def test_resolving_a_name_opens_no_file(tmp_path):
    """In process, with an audit hook: resolving any unknown string opens no file and lists
    no directory (the packaged recipes were read once, before)."""
    from rixin.data.recipe import packaged_recipes
    from rixin.data.recipe_store import RecipeStore
    from rixin.errors import InvalidRequest
    from rixin.store.db import Database
    from rixin.store.tenancy import Caller, Tenancy

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    project = Tenancy(db).ensure_project("p")
    caller = Caller(project.id, "p", "k", False)
    store = RecipeStore(db)
    packaged_recipes()
    store.resolve(caller, "default")  # warm: imports, the database connection
    seen: list[tuple] = []
    watching = True

    def hook(event, args):
        if watching and event in ("open", "os.listdir", "os.scandir", "glob.glob", "shutil.copyfile"):
            seen.append((event, args[:1]))

    sys.addaudithook(hook)
    try:
        for probe in PROBES:
            with pytest.raises(InvalidRequest):
                store.resolve(caller, probe)
    finally:
        watching = False
        db.dispose()
    paths = [str(a[0]) for _, a in seen]
    assert not [p for p in paths if any(probe.strip("~./") in p for probe in PROBES)], seen
    assert not [p for p in paths if not p.endswith(("r.db", "r.db-journal", "r.db-wal", "r.db-shm"))], seen


def test_stored_recipes_round_trip_and_stay_in_their_project(project):
    server, http, dataset_id = project
    body = {"name": "tickets", "description": "short records", "quality": {"min_words": 3}}
    created = http.post("/v1/recipes", json=body)
    assert created.status_code == 200, created.text
    recipe = created.json()
    assert recipe["object"] == "recipe" and recipe["id"].startswith("rcp") and recipe["source"] == "project"
    assert recipe["recipe"]["quality"]["min_words"] == 3 and recipe["recipe"]["steps"][0] == "normalize"
    yaml_text = "name: tickets-yaml\nsteps: [normalize, pii]\npii: {types: [email]}\n"
    as_yaml = http.post("/v1/recipes", content=yaml_text, headers={"content-type": "application/yaml"})
    assert as_yaml.status_code == 200 and as_yaml.json()["recipe"]["steps"] == ["normalize", "pii"], as_yaml.text

    listed = http.get("/v1/recipes").json()["data"]
    assert [r["name"] for r in listed] == ["default", "short", "tickets", "tickets-yaml"]
    assert http.get(f"/v1/recipes/{recipe['id']}").json()["name"] == "tickets"
    assert http.get("/v1/recipes/tickets").json()["id"] == recipe["id"]
    assert http.get("/v1/recipes/default").json()["source"] == "packaged"

    # validation: unknown keys name the field; duplicates and packaged names are refused
    bad = http.post("/v1/recipes", json={"name": "x", "quality": {"min_wordz": 3}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "quality.min_wordz"
    assert http.post("/v1/recipes", json=body).status_code == 409
    assert http.post("/v1/recipes", json={"name": "default"}).status_code == 400
    assert http.post("/v1/recipes", json={"quality": {}}).json()["error"]["param"] == "name"
    bomb = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nname: bomb\nsteps: *b\n"
    assert http.post("/v1/recipes", content=bomb, headers={"content-type": "application/yaml"}).status_code == 400
    assert http.post("/v1/recipes", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400

    # a clean request names it by name or id; the job records which recipe was used
    job = http.post(f"/v1/datasets/{dataset_id}/clean", json={"recipe": "tickets"})
    assert job.status_code == 200, job.text
    assert job.json()["params"]["recipe_source"] == {"name": "tickets", "source": "project", "id": recipe["id"]}
    assert http.post(f"/v1/datasets/{dataset_id}/clean", json={"recipe": recipe["id"]}).status_code == 200

    # another project: the recipe does not exist for it
    with server.http(server.new_key("sec-data-recipes-other")) as other:
        assert other.get(f"/v1/recipes/{recipe['id']}").status_code == 404
        assert other.get("/v1/recipes/tickets").status_code == 404
        assert other.delete(f"/v1/recipes/{recipe['id']}").status_code == 404
        assert "tickets" not in [r["name"] for r in other.get("/v1/recipes").json()["data"]]
        file_id = server.client(other.headers["authorization"].split()[1]).files.create(
            file=("o.txt", io.BytesIO(b"one two three\n")), purpose="user_data").id
        theirs = other.post("/v1/datasets", json={"name": "o", "files": [file_id]}).json()["id"]
        refused = other.post(f"/v1/datasets/{theirs}/clean", json={"recipe": recipe["id"]})
        assert refused.status_code == 400 and "tickets" not in refused.text

    assert http.delete("/v1/recipes/tickets").json() == {"id": recipe["id"], "object": "recipe.deleted",
                                                         "deleted": True}
    assert http.get(f"/v1/recipes/{recipe['id']}").status_code == 404
    assert http.delete("/v1/recipes/default").status_code == 400
