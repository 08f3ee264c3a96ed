"""Cleaning a dataset version into a new version, on Ray Data, resumable shard by shard.

    version JSONL ─split─▶ shards/NNNNN.in.jsonl ─Ray Data map (per-document blocks)─▶
    shards/NNNNN.out.jsonl + .sig.npy + .report.json + .done ─driver─▶ exact and near dedup
    over all shards ─▶ new version artifact + merged report

The shards, their `.done` markers and resume are jobs/shards.py's skeleton: a shard whose
marker exists is never processed again, so a job killed halfway and restarted (by the
gateway's runner, which requeues it at its next start) redoes only the rest. Its shards run on Ray
Data (the map function leaves each marker), not in the skeleton's loop. Every write is atomic
(temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from rixin.data.blocks import Doc, apply_blocks
from rixin.data.datasets import Datasets
from rixin.data.recipe_store import RecipeStore
from rixin.data.records import iter_jsonl, text_fields
from rixin.data.recipe import Recipe, build_blocks, parse_recipe, rule_for, text_transforms
from rixin.data.report import Report
from rixin.errors import InvalidRequest
from rixin.jobs.shards import (Resume, finish_once, mark_done, remove_shards, resume, shard_name, shard_path,
                               split_records)
from rixin.jobs.store import JobStore
from rixin.store.artifacts import ArtifactStore, atomic_write
from rixin.store.schema import DatasetVersion, Job
from rixin.store.tenancy import Caller

SHARD_SIZE = 2000


@dataclass(frozen=True)
class CleanServices:
    """What cleaning jobs use; built once in platform.py. `work_dir`: where jobs keep shards."""

    datasets: Datasets
    recipes: RecipeStore
    artifacts: ArtifactStore
    jobs: JobStore
    work_dir: Path


def submit_clean(services: CleanServices, caller: Caller, dataset_id: str, version: int | None,
                 recipe: str | dict | None, *, shard_size: int = SHARD_SIZE) -> Job:
    """Validate and queue a cleaning job. `recipe` is a
    packaged name, a stored recipe's id or name, a recipe mapping, or None (chosen from the
    dataset's kind); see recipe_store.py."""
    source = services.datasets.version(caller, dataset_id, version)
    resolved = services.recipes.resolve(caller, recipe, source, services.artifacts)
    params = {"dataset_id": dataset_id, "version": source.version,
              "recipe": resolved.recipe.model_dump(mode="json"), "recipe_name": resolved.name,
              "recipe_source": resolved.describe(), "shard_size": shard_size}
    return services.jobs.create(caller, "clean", params)


# ---------------------------------------------------------------------- one record, one shard


def clean_record(blocks: list, transforms: list, record: dict):
    """(kept record or None, verdict) — filters judge the whole record's text; the text
    transforms (normalisation, PII redaction) are applied to every field separately."""
    fields = text_fields(record)
    joined = "\n".join(container[key] for container, key in fields)
    verdict = apply_blocks(blocks, Doc(record["id"], joined, record.get("meta") or {}))
    if not verdict.keep:
        return None, verdict
    if len(fields) == 1:
        container, key = fields[0]
        container[key] = verdict.text
    else:
        counts: Counter = Counter()
        for container, key in fields:
            rewritten = apply_blocks(transforms, Doc(record["id"], container[key]))
            container[key] = rewritten.text
            counts.update(rewritten.counts)
        verdict.counts = dict(counts)
    return record, verdict


def process_shard(work: str, recipe_data: dict, row: dict) -> dict:
    """Ray Data map function: clean one input shard and leave its outputs and marker."""
    from rixin.data.dedup import minhash_signature, normalized_hash

    recipe = parse_recipe(recipe_data)
    name = shard_name(row["index"])
    shard = shard_path(Path(work), name)
    blocks = build_blocks(recipe)
    transforms = text_transforms(recipe, blocks)
    report = Report(samples_per_reason=recipe.samples_per_reason)
    signatures, lines = [], []
    for record in iter_jsonl(shard.with_suffix(".in.jsonl")):
        kept, verdict = clean_record(blocks, transforms, record)
        report.add(Doc(record["id"], ""), verdict)
        if kept is None:
            continue
        text = "\n".join(c[k] for c, k in text_fields(kept))
        lines.append(json.dumps({"record": kept, "hash": normalized_hash(text), "redactions": verdict.counts},
                                ensure_ascii=False))
        if recipe.runs_near_dedup:
            nd = recipe.near_dedup
            signatures.append(minhash_signature(text, num_perm=nd.num_perm, ngram=nd.ngram, seed=nd.seed,
                                                unit=nd.shingle))
    atomic_write(shard.with_suffix(".out.jsonl"), ("\n".join(lines) + "\n" if lines else "").encode())
    if recipe.runs_near_dedup:
        array = np.stack(signatures) if signatures else np.zeros((0, recipe.near_dedup.num_perm), np.uint32)
        _atomic_npy(shard.with_suffix(".sig.npy"), array)
    atomic_write(shard.with_suffix(".report.json"), json.dumps(report.to_dict()).encode())
    mark_done(Path(work), name, report.docs_in)
    return {"index": row["index"], "in": report.docs_in, "out": report.docs_out}


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- the job


def split_into_shards(source: Path, work: Path, shard_size: int) -> int:
    """Write the input shards of a version JSONL once; returns their number."""
    return split_records(iter_jsonl(source), work, shard_size)


def shard_source(datasets: Datasets, artifacts: ArtifactStore, work_dir: Path, job: Job
                 ) -> tuple[DatasetVersion, Path, int, Resume]:
    """The start of a job over a dataset version (cleaning, labeling): the version, read as the
    job's project; the job's work dir, holding the version split into shards; where it stands."""
    caller = Caller(job.project_id, "", "", False)
    source = datasets.version(caller, job.params["dataset_id"], job.params["version"])
    work = work_dir / job.id
    total = split_into_shards(artifacts.path(source.sha256), work, job.params["shard_size"])
    return source, work, total, resume(work, [shard_name(i) for i in range(total)])


def run_clean(services: CleanServices, job: Job, report) -> dict:
    """Job handler: per-document blocks on Ray Data, then dedup, then the new version."""
    import ray

    params = job.params
    recipe = parse_recipe(params["recipe"])
    source, work, total, state = shard_source(services.datasets, services.artifacts, services.work_dir, job)
    report(stage="clean", shards_total=total, shards_done=len(state.done), shards_skipped=len(state.done),
           records_total=source.records)
    if state.todo:
        ds = ray.data.from_items([{"index": int(name)} for name in state.todo], override_num_blocks=len(state.todo))
        mapped = ds.map(partial(process_shard, str(work), params["recipe"]))
        for finished, _row in enumerate(mapped.iter_rows(), start=len(state.done) + 1):
            report(shards_done=finished)

    def create_version() -> dict:
        report(stage="dedup")
        sha256, kept, merged = dedup_and_write(services.artifacts, work, total, recipe)
        used = params.get("recipe_source") or {"name": params["recipe_name"]}
        version = services.datasets.add_version(
            source.dataset_id, source, "clean", {"recipe": params["recipe_name"], "recipe_source": used,
                                                 "job_id": job.id, "recipe_settings": params["recipe"]},
            sha256, kept, source.format, {"recipe": used, **merged})
        return {"version": version.version, "version_id": version.id, "documents_out": kept}

    result = finish_once(work, create_version)
    report(stage="done")
    remove_shards(work)
    return {"dataset_id": source.dataset_id, "documents_in": source.records, **result}


def merge_reports(work: Path, total: int, samples_per_reason: int) -> Report:
    merged = Report(samples_per_reason=samples_per_reason)
    for i in range(total):
        saved = shard_path(work, shard_name(i)).with_suffix(".report.json").read_text()
        merged.merge(Report.from_dict(json.loads(saved)))
    return merged


def _out_lines(work: Path, index: int) -> list[str]:
    return shard_path(work, shard_name(index)).with_suffix(".out.jsonl").read_text(encoding="utf-8").splitlines()


def _shard_texts(work: Path, where: list[tuple[int, int]]):
    """A loader for near_duplicate_groups: row indices -> their texts, re-read from the shard
    outputs (only the shards that hold a candidate), so the texts never all sit in memory."""
    def load(indices: list[int]) -> dict[int, str]:
        wanted: dict[int, dict[int, int]] = {}
        for k in indices:
            shard, row = where[k]
            wanted.setdefault(shard, {})[row] = k
        out = {}
        for shard, rows in wanted.items():
            lines = _out_lines(work, shard)
            for row, k in rows.items():
                record = json.loads(lines[row])["record"]
                out[k] = "\n".join(c[key] for c, key in text_fields(record))
        return out

    return load


def find_duplicates(work: Path, total: int, recipe: Recipe) -> dict[str, tuple[str, str]]:
    """record id → (reason, id of the record it duplicates), over all shards in order."""
    from rixin.data.dedup import near_duplicate_groups

    drop: dict[str, tuple[str, str]] = {}
    first_with_hash: dict[str, str] = {}
    near_ids, near_rows, near_where = [], [], []
    for i in range(total):
        shard = shard_path(work, shard_name(i))
        signatures = np.load(shard.with_suffix(".sig.npy")) if recipe.runs_near_dedup else None
        for row, line in enumerate(_out_lines(work, i)):
            item = json.loads(line)
            rid = item["record"]["id"]
            if recipe.runs_exact_dedup:
                if item["hash"] in first_with_hash:
                    drop[rid] = ("exact_duplicate", first_with_hash[item["hash"]])
                    continue
                first_with_hash[item["hash"]] = rid
            if signatures is not None:
                near_ids.append(rid)
                near_rows.append(signatures[row])
                near_where.append((i, row))
    if near_ids:
        nd = recipe.near_dedup
        groups = near_duplicate_groups(near_ids, np.stack(near_rows), nd.threshold, texts=_shard_texts(work, near_where),
                                       ngram=nd.ngram, unit=nd.shingle)
        drop.update({rid: ("near_duplicate", kept) for rid, kept in groups.items()})
    return drop


def dedup_and_write(artifacts, work: Path, total: int, recipe: Recipe) -> tuple[str, int, dict]:
    """Drop duplicates across all shards, write the new version; (sha256, kept, report)."""
    report = merge_reports(work, total, recipe.samples_per_reason)
    drop = find_duplicates(work, total, recipe) if recipe.runs_exact_dedup or recipe.runs_near_dedup else {}
    kept = 0
    with artifacts.writer() as sink:
        for i in range(total):
            out = []
            for line in _out_lines(work, i):
                item = json.loads(line)
                record = item["record"]
                if record["id"] in drop:
                    reason, _original = drop[record["id"]]
                    report.add_removed(record["id"], reason, "\n".join(c[k] for c, k in text_fields(record)),
                                       item.get("redactions"))
                    continue
                out.append(json.dumps(record, ensure_ascii=False))
                kept += 1
            if out:
                sink.write(("\n".join(out) + "\n").encode())
        sha256, _ = sink.commit()
    rules = {reason: rule_for(reason, recipe) for reason in report.removed}
    if kept == 0:
        why = "; ".join(f"{n} {reason} ({rules[reason]})" for reason, n in report.removed.most_common())
        hint = " Records this short suit the packaged recipe 'short'." if "too_short" in report.removed else ""
        raise InvalidRequest(f"Cleaning with recipe '{recipe.name}' removed every record: {why}.{hint} "
                             "Loosen the recipe's thresholds or choose another recipe.", param="recipe")
    return sha256, kept, {**report.to_dict(), "removed_by_rule": rules}
