"""knn: embedding k-nearest neighbours from labeled seeds, no LLM.

Seeds are embedded once, items in batches; cosine similarity (the vectors are L2-normalised,
so a dot product), the k most similar seeds vote with weight max(sim, 0), the label with the
largest weight wins (ties: the nearest seed's label), and the confidence is the winning
weight's share of the total.
"""

from __future__ import annotations

import numpy as np

from rixin.errors import ContextLengthExceeded
from rixin.label.labelers import Fail, LabelerSpec, LabelTask, Verdict, check_label_set, one_of_labels

EMBED_BATCH = 64
EMBED_MAX_CHARS = 1000  # all-MiniLM reads at most 256 tokens; longer texts are cut, then halved on error


class KnnLabeler:
    """Similarity-weighted vote of the k nearest seeds (see module doc)."""

    def __init__(self, task: LabelTask, engine):
        self.task, self.engine = task, engine
        self.seed_labels = [s.label for s in task.seeds]
        self.seeds = self._embed([s.text for s in task.seeds])  # (n_seeds, dim)
        self.k = min(task.k, len(task.seeds))

    def _embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim); texts are cut to a character budget, halved while the model
        still finds one too long (CJK text spends more tokens per character)."""
        limit = EMBED_MAX_CHARS
        while True:
            try:
                return np.asarray(self.engine.embed([t[:limit] for t in texts]), dtype=np.float32)
            except ContextLengthExceeded:
                if limit <= 32:
                    raise
                limit //= 2

    def label(self, texts: list[str]) -> list[Verdict]:
        out: list[Verdict] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors = self._embed(texts[start:start + EMBED_BATCH])  # (batch, dim)
            similarity = vectors @ self.seeds.T  # (batch, n_seeds), cosine
            out += [self._vote(row) for row in similarity]
        return out

    def _vote(self, row: np.ndarray) -> Verdict:
        nearest = np.argsort(-row, kind="stable")[:self.k]
        weights: dict[str, float] = {}
        for j in nearest:
            weights[self.seed_labels[j]] = weights.get(self.seed_labels[j], 0.0) + max(float(row[j]), 0.0)
        total = sum(weights.values())
        best = max(weights.values())
        tied = [lab for lab, w in weights.items() if w == best]
        label = next(self.seed_labels[j] for j in nearest if self.seed_labels[j] in tied)  # ties: nearest
        confidence = weights[label] / total if total > 0 else 0.0
        reason = "unanimous" if len(weights) == 1 else "majority"
        return Verdict(label, min(max(confidence, 0.0), 1.0), reason)


def check(task: LabelTask, fail: Fail) -> LabelTask:
    """Labels default to the seeds' labels; every seed's label is in the set, every label has one."""
    if task.labels is None:
        task = task.model_copy(update={"labels": list(dict.fromkeys(s.label for s in task.seeds))})
    check_label_set(task, fail)
    labels = task.label_set
    missing = [x for x in labels if x not in {s.label for s in task.seeds}]
    for i, seed in enumerate(task.seeds):
        if seed.label not in labels:
            fail(f"seeds[{i}].label", f"{seed.label!r} is not one of labels {labels}")
    if missing:
        fail("seeds", f"every label needs at least one seed; none for {missing}")
    return task


LABELER = LabelerSpec(
    name="knn", engine="embedding", build=KnnLabeler, uses=frozenset({"labels", "seeds", "k"}),
    summary="knn: one label of `labels` by a similarity-weighted vote of the k nearest `seeds` "
            "(embeddings, no LLM)",
    check=check, accept=one_of_labels)
