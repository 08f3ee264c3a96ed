"""Recipes a project stores (POST /v1/recipes), and resolving what a cleaning request names.

A cleaning request names its recipe in one of three ways, and in no other:

    a packaged name         "default", "short"        (shipped in rixin/data/recipes/)
    a stored recipe         its id "rcp_…" or name     (this project's own, in the database)
    an inline recipe        {"quality": {...}, ...}     (validated like a stored one)

Anything else is a 400 that lists the names there are. The string is compared with those
names only: it is never used as a path, so the server neither opens nor looks up a file
because of it, and the answer is the same whether or not such a file exists. When a request
names no recipe, one is chosen from the dataset's kind (see choose_recipe).
"""

from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from rixin.data.records import iter_jsonl, text_fields
from rixin.data.recipe import Recipe, packaged_recipe, packaged_recipes, parse_recipe
from rixin.data.text import split_words
from rixin.errors import Conflict, InvalidRequest, NotFound
from rixin.store.db import Database
from rixin.store.schema import StoredRecipe
from rixin.store.tenancy import Caller, new_id

RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Records of chat / SFT formats are short by nature: the web-text recipe would drop them.
SHORT_FORMATS = ("chat", "prompt_completion", "preference", "mixed")
# Text whose median record has fewer words than this is short domain text (tickets, FAQ
# entries), not web pretraining text; the default recipe keeps documents from 50 words.
SHORT_TEXT_WORDS = 100
SAMPLE_RECORDS = 500


@dataclass(frozen=True)
class Resolved:
    """A recipe and how the request named it (shown in the job and the cleaning report)."""

    recipe: Recipe
    name: str
    source: str  # packaged | project | inline | chosen
    id: str | None = None
    why: str | None = None  # for source "chosen": what in the dataset chose it

    def describe(self) -> dict:
        out = {"name": self.name, "source": self.source}
        if self.id:
            out["id"] = self.id
        if self.why:
            out["chosen_because"] = self.why
        return out


class RecipeStore:
    """Recipes of each project, by id or name. Another project's recipe does not exist."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, caller: Caller, data: dict) -> StoredRecipe:
        """Validate `data` (a recipe mapping) and store it under its `name`."""
        recipe = parse_recipe(data)
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not RECIPE_NAME.match(name):
            raise InvalidRequest("A stored recipe needs a 'name': 1-128 letters, digits, '.', '_', '-', "
                                 "starting with a letter or digit.", param="name")
        if name in packaged_recipes():
            raise InvalidRequest(f"'{name}' is the name of a packaged recipe; choose another name.",
                                 param="name")
        row = StoredRecipe(id=new_id("rcp"), project_id=caller.project_id, name=name,
                           description=recipe.description, settings=recipe.model_dump(mode="json"))
        try:
            with self.db.session() as s:
                s.add(row)
        except IntegrityError as e:
            raise Conflict(f"This project already has a recipe named '{name}'; delete it first or "
                           "choose another name.", param="name") from e
        return row

    def list(self, caller: Caller) -> list[StoredRecipe]:
        with self.db.session() as s:
            q = (select(StoredRecipe).where(StoredRecipe.project_id == caller.project_id)
                 .order_by(StoredRecipe.created_at, StoredRecipe.name))
            return list(s.scalars(q))

    def find(self, caller: Caller, id_or_name: str) -> StoredRecipe | None:
        with self.db.session() as s:
            q = select(StoredRecipe).where(
                StoredRecipe.project_id == caller.project_id,
                or_(StoredRecipe.id == id_or_name, StoredRecipe.name == id_or_name))
            return s.scalars(q).first()

    def get(self, caller: Caller, id_or_name: str) -> StoredRecipe:
        row = self.find(caller, id_or_name)
        if row is None:
            raise NotFound(f"No such recipe: {id_or_name}", param="recipe_id")
        return row

    def delete(self, caller: Caller, id_or_name: str) -> StoredRecipe:
        if id_or_name in packaged_recipes():
            raise InvalidRequest(f"'{id_or_name}' is a packaged recipe and cannot be deleted.",
                                 param="recipe_id")
        row = self.get(caller, id_or_name)
        with self.db.session() as s:
            s.delete(s.get(StoredRecipe, row.id))
        return row

    def resolve(self, caller: Caller, spec: str | dict | None, version=None, artifacts=None) -> Resolved:
        """The recipe a cleaning request names (see the module docstring). With no recipe named,
        one is chosen from `version` (a DatasetVersion) and its records in `artifacts`."""
        if spec is None:
            return choose_recipe(version, artifacts)
        if isinstance(spec, dict):
            recipe = parse_recipe(spec)
            return Resolved(recipe, recipe.name, "inline")
        packaged = packaged_recipe(spec) if isinstance(spec, str) else None
        if packaged is not None:
            return Resolved(packaged, spec, "packaged")
        row = self.find(caller, spec) if isinstance(spec, str) and len(spec) <= 128 else None
        if row is not None:
            return Resolved(parse_recipe(row.settings, source=f"recipe '{row.name}'"), row.name, "project", row.id)
        own = ", ".join(r.name for r in self.list(caller)) or "(none yet)"
        # The message never repeats the string: it is the same for every unknown value.
        raise InvalidRequest(
            "Unknown recipe: 'recipe' must be a packaged recipe name "
            f"({', '.join(packaged_recipes())}), the id or name of one of this project's recipes "
            f"({own}), or a recipe object. Store a recipe with POST /v1/recipes; file paths are "
            "not accepted.", param="recipe")


def choose_recipe(version, artifacts) -> Resolved:
    """'short' for chat/SFT records and short domain text, 'default' (web pretraining text)
    for long text. The median word count of the first records decides for plain text."""
    if version.format in SHORT_FORMATS:
        return Resolved(packaged_recipe("short"), "short", "chosen",
                        why=f"the records are {version.format} records")
    records = itertools.islice(iter_jsonl(artifacts.path(version.sha256)), SAMPLE_RECORDS)
    counts = [len(split_words("\n".join(c[k] for c, k in text_fields(r)))) for r in records]
    median = statistics.median(counts) if counts else 0
    if median < SHORT_TEXT_WORDS:
        return Resolved(packaged_recipe("short"), "short", "chosen",
                        why=f"text records of {median:g} words (median) are short domain text")
    return Resolved(packaged_recipe("default"), "default", "chosen",
                    why=f"text records of {median:g} words (median) are long text")
