"""Recipes: reading a create body (JSON object or YAML text) and the store calls behind the routes."""

from __future__ import annotations

import json

import yaml

from rixin.api.pages import page
from rixin.api.recipes.protocol import YAML_TYPES, packaged_object, recipe_object
from rixin.data.recipe import packaged_recipes, recipe_from_yaml
from rixin.errors import InvalidRequest
from rixin.platform import Platform
from rixin.store.tenancy import Caller


def parse_body(raw: bytes, content_type: str) -> dict:
    """The recipe mapping of a create request. YAML text is validated first (aliases refused)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest("The recipe body must be UTF-8 text.", param="recipe") from e
    media = content_type.split(";")[0].strip().lower()
    if media in YAML_TYPES:
        recipe_from_yaml(text)  # the typed check, with YAML-aware errors
        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise InvalidRequest("The body is not valid JSON: send the recipe object as JSON, or as YAML "
                                 "with 'Content-Type: application/yaml'.", param="recipe") from e
    if not isinstance(data, dict):
        raise InvalidRequest("A recipe must be an object of settings (name, steps, quality, ...).",
                             param="recipe")
    return data


def create(platform: Platform, caller: Caller, raw: bytes, content_type: str) -> dict:
    return recipe_object(platform.recipes.create(caller, parse_body(raw, content_type)))


def list_all(platform: Platform, caller: Caller) -> dict:
    """The packaged recipes, then this project's own."""
    data = [packaged_object(name) for name in packaged_recipes()]
    data += [recipe_object(row) for row in platform.recipes.list(caller)]
    return page(data)


def get(platform: Platform, caller: Caller, id_or_name: str) -> dict:
    if id_or_name in packaged_recipes():
        return packaged_object(id_or_name)
    return recipe_object(platform.recipes.get(caller, id_or_name))


def delete(platform: Platform, caller: Caller, id_or_name: str) -> dict:
    row = platform.recipes.delete(caller, id_or_name)
    return {"id": row.id, "object": "recipe.deleted", "deleted": True}
