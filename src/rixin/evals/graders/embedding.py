"""embedding: cosine similarity of output and ideal embeddings (best ideal), clipped to [0, 1];
with a threshold: 1 at or above it, else 0."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec
from rixin.models.registry import EMBEDDING_MODEL


class EmbeddingConfig(GraderConfig):
    """Cosine similarity with the closest ideal, clipped to [0, 1]; with a threshold 1/0."""

    type: Literal["embedding"]
    model: str = Field(EMBEDDING_MODEL, description="An embedding model id.")
    threshold: float | None = Field(None, ge=-1, le=1, description="Score 1 at or above, else 0; "
                                    "default: the similarity itself.")


class EmbeddingSimilarity:
    """Engine: anything with `embed(texts) -> (n, dim)` L2-normalised vectors."""

    def __init__(self, config: EmbeddingConfig, engine):
        self.config, self.name, self.engine = config, config.label, engine

    def grade(self, item: EvalItem, output: str) -> Grade:
        if not item.ideal:
            return Grade(0.0, "no_ideal")
        if not output.strip():
            return Grade(0.0, "empty_output")
        vectors = np.asarray(self.engine.embed([output, *item.ideal]), dtype=np.float32)  # (1 + ideals, dim)
        similarity = float(np.max(vectors[1:] @ vectors[0]))
        if self.config.threshold is not None:
            return Grade(1.0, "similar") if similarity >= self.config.threshold else Grade(0.0, "dissimilar")
        return Grade(min(max(similarity, 0.0), 1.0), "similarity")


GRADER = GraderSpec(config=EmbeddingConfig, build=EmbeddingSimilarity, engine="embedding")
