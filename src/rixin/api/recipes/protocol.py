"""Recipes (rixin extension): the stored recipe object and the request body's media types."""

from __future__ import annotations

from rixin.data.recipe import packaged_recipe
from rixin.store.schema import StoredRecipe

# POST /v1/recipes takes the recipe object as JSON, or the same recipe as YAML text.
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
RECIPE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "A cleaning recipe; "
                                            "'name' is required, unknown keys are errors."}},
            "application/yaml": {"schema": {"type": "string", "description": "The same recipe as YAML."}},
        },
    }
}


def recipe_object(row: StoredRecipe) -> dict:
    return {"id": row.id, "object": "recipe", "name": row.name, "description": row.description,
            "source": "project", "recipe": row.settings,
            "created_at": int(row.created_at.timestamp()) if row.created_at else 0}


def packaged_object(name: str) -> dict:
    recipe = packaged_recipe(name)
    return {"id": name, "object": "recipe", "name": name, "description": recipe.description,
            "source": "packaged", "recipe": recipe.model_dump(mode="json"), "created_at": 0}
