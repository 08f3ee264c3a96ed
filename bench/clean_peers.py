"""The tools the cleaning benchmark compares, each a function that cleans the corpus stage by
stage and returns {"stages": {name: {docs, bytes, s}}, "after_filters", "exact_removed",
"near_removed"}: rixin's library in-process (and its job path without Ray), datatrove's
pipelines in a LocalPipelineExecutor in this process, Data-Juicer in a child under its own
venv (`clean.py --dj-child`). Standard library only at import time: the Data-Juicer child
imports this module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
DJ_PYTHON = Path("/tmp/dj-venv/bin/python")
SCRIPT = Path(__file__).resolve().parent / "clean.py"  # `clean.py --dj-child IN OUT` runs dj_child


# ---------------------------------------------------------------------------- rixin


def run_rixin(ids: list[str], texts: list[str], profile: str | None = None) -> dict:
    """The per-document blocks, then exact and near dedup, each stage timed alone; the stage
    named by `profile` runs under cProfile (its top functions are returned)."""
    import cProfile
    import pstats
    from contextlib import contextmanager

    import numpy as np

    from rixin.data.blocks import Doc
    from rixin.data.blocks.language import LanguageFilter
    from rixin.data.blocks.normalize import Normalize
    from rixin.data.blocks.pii import PiiRedactor
    from rixin.data.blocks.quality import QualityFilter
    from rixin.data.dedup import exact_duplicates, minhash_signature, near_duplicate_groups, normalized_hash
    from rixin.data.recipe import packaged_recipe

    recipe = packaged_recipe("default")
    nd = recipe.near_dedup
    normalize, quality = Normalize(recipe.normalize), QualityFilter(recipe.quality)
    pii, language = PiiRedactor(recipe.pii), LanguageFilter(recipe.language)
    language(Doc("warm-up", "a warm-up so the model load (~0.6 s, once per process) is not timed"))
    quality(Doc("warm-up", "预热 jieba 的词典"))  # rjieba loads its dictionary on first use
    st: dict = {}
    prof: dict = {}

    @contextmanager
    def timed(name: str, docs: list):
        st[name] = {"docs": len(docs), "bytes": sum(len(t.encode()) for _, t in docs)}
        profiler = cProfile.Profile() if name == profile else None
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        yield st[name]
        if profiler:
            profiler.disable()
        st[name]["s"] = time.perf_counter() - t0
        if profiler:
            prof.update(stage=name, top=top_functions(pstats.Stats(profiler)))

    docs = list(zip(ids, texts))
    with timed("normalize", docs):
        out = []
        for doc_id, text in docs:
            v = normalize(Doc(doc_id, text))
            if v.keep:
                out.append((doc_id, v.text))
    with timed("quality", out):
        kept = [(doc_id, text) for doc_id, text in out if quality(Doc(doc_id, text)).keep]
    with timed("pii", kept):
        kept = [(doc_id, pii(Doc(doc_id, text)).text) for doc_id, text in kept]
    with timed("langid", kept):
        for doc_id, text in kept:
            language(Doc(doc_id, text))
    with timed("exact", kept):
        exact = exact_duplicates([d for d, _ in kept], [normalized_hash(t) for _, t in kept])
    rest = [(d, t) for d, t in kept if d not in exact]
    with timed("near", rest) as row:
        t0 = time.perf_counter()
        sigs = np.stack([minhash_signature(t, nd.num_perm, nd.ngram, nd.seed, nd.shingle) for _, t in rest])
        t1 = time.perf_counter()
        near = near_duplicate_groups([d for d, _ in rest], sigs, nd.threshold, texts=[t for _, t in rest],
                                     ngram=nd.ngram, unit=nd.shingle)
        row.update(signature_s=t1 - t0, grouping_s=time.perf_counter() - t1)
    return {"stages": st, "after_filters": [d for d, _ in kept], "exact_removed": sorted(exact),
            "near_removed": sorted(near), "profile": prof}


def top_functions(stats, n: int = 15) -> list[dict]:
    """The n functions with the most own time: [{function, calls, tottime_s, cumtime_s}]."""
    rows = []
    for (path, line, func), (_cc, calls, tt, ct, _callers) in stats.stats.items():
        where = f"{Path(path).name}:{line}" if line else path
        rows.append({"function": f"{func} ({where})", "calls": calls, "tottime_s": round(tt, 3),
                     "cumtime_s": round(ct, 3)})
    return sorted(rows, key=lambda r: -r["tottime_s"])[:n]


def run_rixin_job(ids: list[str], texts: list[str], workdir: Path) -> dict:
    """The job path without Ray: split into shards, process_shard on each (all blocks of the
    default recipe, hashes, signatures, JSONL and .npy outputs), then find_duplicates."""
    from rixin.data.clean import find_duplicates, process_shard, split_into_shards
    from rixin.data.recipe import packaged_recipe

    recipe = packaged_recipe("default")
    source = workdir / "source.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for doc_id, text in zip(ids, texts):
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    t0 = time.perf_counter()
    total = split_into_shards(source, workdir / "job", 2000)
    t1 = time.perf_counter()
    for i in range(total):
        process_shard(str(workdir / "job"), recipe.model_dump(mode="json"), {"index": i})
    t2 = time.perf_counter()
    drop = find_duplicates(workdir / "job", total, recipe)
    t3 = time.perf_counter()
    return {"split_s": t1 - t0, "process_shards_s": t2 - t1, "find_duplicates_s": t3 - t2,
            "total_s": t3 - t0, "docs_per_s": len(ids) / (t3 - t0), "shards": total,
            "removed_as_duplicates": len(drop)}


# ---------------------------------------------------------------------------- datatrove

_DT: dict = {}  # in-memory input and output of the datatrove pipelines (functions deepcopy as-is)


def _dt_source(data, rank: int = 0, world_size: int = 1):
    from datatrove.data import Document

    for doc_id, text in _DT["src"]:
        yield Document(text=text, id=doc_id)


def _dt_source_lang(data, rank: int = 0, world_size: int = 1):
    """One language's documents (the CJK check is datatrove's per-language routing cost)."""
    from datatrove.data import Document

    want_zh = _DT["lang"] == "zh"
    for doc_id, text in _DT["src"]:
        if bool(CJK.search(text)) == want_zh:
            yield Document(text=text, id=doc_id)


def _dt_sink(data, rank: int = 0, world_size: int = 1):
    out = _DT["out"]
    for doc in data:
        out.append((doc.id, doc.text))
    yield from ()


def _dt_exact_key(doc) -> bytes:
    from datatrove.utils.text import simplify_text

    return simplify_text(doc.text).encode("utf-8")


_dt_exact_key.__annotations__["return"] = bytes  # datatrove reads it; `from __future__` made it a string


def patch_datatrove_xxhash() -> None:
    """datatrove 0.10.1 passes str to xxhash, which xxhash>=4 rejects ("Strings must be encoded
    before hashing"), so its default MinHash config crashes. Encode first, as xxhash<4 did."""
    import xxhash

    import datatrove.utils.hashes.xxhash as dt_xxhash

    dt_xxhash.xxhash32 = lambda d: xxhash.xxh32_intdigest(d.encode() if isinstance(d, str) else d)
    dt_xxhash.xxhash64 = lambda d: xxhash.xxh64_intdigest(d.encode() if isinstance(d, str) else d)


def run_datatrove(ids: list[str], texts: list[str], scratch: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupFilter, ExactDedupSignature
    from datatrove.pipeline.dedup.exact_dedup import ExactFindDedups
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.utils.typeshelper import Languages
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    patch_datatrove_xxhash()
    counter = iter(range(10**6))
    lang_code = {"en": Languages.english, "zh": Languages.chinese__hani}

    def execute(pipeline: list, tasks: int = 1) -> None:
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1,
                              logging_dir=str(scratch / f"logs{next(counter)}")).run()

    def flow(src: list, pipeline_for_lang) -> tuple[list, float]:
        """Run each language's pipeline on its documents; (output, seconds)."""
        _DT.update(src=src, out=[])
        t0 = time.perf_counter()
        for lang in ("en", "zh"):
            _DT["lang"] = lang
            pipeline_for_lang(lang)
        return _DT["out"], time.perf_counter() - t0

    st: dict = {}

    def stage(name: str, docs: list) -> None:
        st[name] = {"docs": len(docs), "bytes": sum(len(t.encode()) for _, t in docs)}

    docs = list(zip(ids, texts))
    stage("normalize", docs)
    _DT.update(src=docs, out=[])
    t0 = time.perf_counter()
    execute([_dt_source, FTFYFormatter(), _dt_sink])
    out, st["normalize"]["s"] = _DT["out"], time.perf_counter() - t0

    stage("quality", out)
    quality_args = {"en": {}, "zh": {"min_avg_word_length": None, "min_stop_words": None}}
    kept, st["quality"]["s"] = flow(out, lambda lang: execute([
        _dt_source_lang, GopherRepetitionFilter(language=lang_code[lang]),
        GopherQualityFilter(language=lang_code[lang], **quality_args[lang]), _dt_sink]))
    kept.sort(key=lambda d: d[0])  # back to corpus order (ids sort in corpus order)

    stage("pii", kept)
    _DT.update(src=kept, out=[])
    t0 = time.perf_counter()
    execute([_dt_source, PIIFormatter(), _dt_sink])
    kept, st["pii"]["s"] = _DT["out"], time.perf_counter() - t0

    stage("exact", kept)
    cfg = ExactDedupConfig(content_getter=_dt_exact_key)
    _DT.update(src=kept, out=[])
    t0 = time.perf_counter()
    execute([_dt_source, ExactDedupSignature(output_folder=str(scratch / "ex_sigs"), config=cfg)])
    execute([ExactFindDedups(data_folder=str(scratch / "ex_sigs"), output_folder=str(scratch / "ex_dups"),
                             config=cfg)])
    execute([_dt_source, ExactDedupFilter(data_folder=str(scratch / "ex_dups"), config=cfg), _dt_sink])
    after_exact, st["exact"]["s"] = _DT["out"], time.perf_counter() - t0
    exact_removed = sorted({d for d, _ in kept} - {d for d, _ in after_exact})

    stage("near", after_exact)
    mh = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8, seed=1)  # 128 hashes, 16x8 like rixin
    parts: dict = {"signature_s": 0.0, "grouping_s": 0.0}

    def minhash(lang: str) -> None:
        base = scratch / f"mh_{lang}"
        load_word_tokenizer.cache_clear()  # else the executor's deepcopy meets a loaded spaCy model
        t0 = time.perf_counter()
        execute([_dt_source_lang, MinhashDedupSignature(output_folder=str(base / "sigs"), config=mh,
                                                        language=lang_code[lang])])
        t1 = time.perf_counter()
        execute([MinhashDedupBuckets(input_folder=str(base / "sigs"), output_folder=str(base / "buckets"),
                                     config=mh)], tasks=mh.num_buckets)
        execute([MinhashDedupCluster(input_folder=str(base / "buckets"), output_folder=str(base / "remove"),
                                     config=mh)])
        execute([_dt_source_lang, MinhashDedupFilter(input_folder=str(base / "remove")), _dt_sink])
        parts["signature_s"] += t1 - t0
        parts["grouping_s"] += time.perf_counter() - t1

    final, st["near"]["s"] = flow(after_exact, minhash)
    st["near"].update(parts)
    near_removed = sorted({d for d, _ in after_exact} - {d for d, _ in final})
    return {"stages": st, "after_filters": [d for d, _ in kept], "exact_removed": exact_removed,
            "near_removed": near_removed}


# ---------------------------------------------------------------------------- Data-Juicer (child)


def dj_child(inp: Path, outp: Path) -> None:
    """Runs under /tmp/dj-venv: Data-Juicer's closest ops, num_proc=1, timed per stage."""
    import logging

    from loguru import logger

    logger.remove()
    logging.disable(logging.WARNING)
    import datasets

    datasets.disable_caching()
    datasets.disable_progress_bars()
    from data_juicer.core.data import NestedDataset
    from data_juicer.ops.deduplicator.document_deduplicator import DocumentDeduplicator
    from data_juicer.ops.deduplicator.document_minhash_deduplicator import DocumentMinhashDeduplicator
    from data_juicer.ops.filter.alphanumeric_filter import AlphanumericFilter
    from data_juicer.ops.filter.character_repetition_filter import CharacterRepetitionFilter
    from data_juicer.ops.filter.special_characters_filter import SpecialCharactersFilter
    from data_juicer.ops.filter.word_repetition_filter import WordRepetitionFilter
    from data_juicer.ops.filter.words_num_filter import WordsNumFilter
    from data_juicer.ops.mapper.clean_email_mapper import CleanEmailMapper
    from data_juicer.ops.mapper.clean_ip_mapper import CleanIpMapper
    from data_juicer.ops.mapper.fix_unicode_mapper import FixUnicodeMapper

    rows = [json.loads(line) for line in inp.open(encoding="utf-8")]
    kw = {"num_proc": 1}
    st: dict = {}

    def stage(name: str, ds) -> float:
        st[name] = {"docs": len(ds), "bytes": sum(len(t.encode()) for t in ds["text"])}
        return time.perf_counter()

    def run_ops(ds, ops):
        for op in ops:
            ds = op.run(ds)
        return ds

    def by_lang(ds, ops_for_lang):
        zh = ds.filter(lambda s: bool(CJK.search(s["text"])), **kw)
        en = ds.filter(lambda s: not CJK.search(s["text"]), **kw)
        return [run_ops(part, ops_for_lang(lang)) for lang, part in (("en", en), ("zh", zh))]

    t0 = time.perf_counter()
    ds = NestedDataset(datasets.Dataset.from_list(rows))  # DJ's reader: rows -> Arrow
    load_s = time.perf_counter() - t0
    stage("normalize", ds)
    ds = run_ops(ds, [FixUnicodeMapper(**kw)])
    st["normalize"]["s"] = time.perf_counter() - t0  # includes the Arrow load
    st["normalize"]["load_s"] = load_s

    t0 = stage("quality", ds)
    common = [CharacterRepetitionFilter(rep_len=10, max_ratio=0.5, **kw),
              SpecialCharactersFilter(max_ratio=0.25, **kw), AlphanumericFilter(min_ratio=0.25, **kw)]
    parts = by_lang(ds, lambda lang: ([WordsNumFilter(min_num=50, max_num=100000, **kw),
                                       WordRepetitionFilter(rep_len=10, max_ratio=0.5, **kw)]
                                      if lang == "en" else []) + common)
    ds = datasets.concatenate_datasets([p.remove_columns([c for c in p.column_names if c not in ("id", "text")])
                                        for p in parts]).sort("id")
    ds = NestedDataset(ds)
    st["quality"]["s"] = time.perf_counter() - t0
    after_filters = list(ds["id"])

    t0 = stage("pii", ds)
    ds = run_ops(ds, [CleanEmailMapper(**kw), CleanIpMapper(**kw)])
    st["pii"]["s"] = time.perf_counter() - t0

    t0 = stage("exact", ds)
    before = set(ds["id"])
    ds = run_ops(ds, [DocumentDeduplicator(lowercase=True, ignore_non_character=True, **kw)])
    st["exact"]["s"] = time.perf_counter() - t0
    exact_removed = sorted(before - set(ds["id"]))

    t0 = stage("near", ds)
    before = set(ds["id"])
    parts = by_lang(ds, lambda lang: [DocumentMinhashDeduplicator(
        tokenization="space" if lang == "en" else "character", window_size=5, num_permutations=128,
        jaccard_threshold=0.8, num_bands=16, num_rows_per_band=8, **kw)])
    st["near"]["s"] = time.perf_counter() - t0
    near_removed = sorted(before - {i for p in parts for i in p["id"]})
    outp.write_text(json.dumps({"stages": st, "after_filters": after_filters,
                                "exact_removed": exact_removed, "near_removed": near_removed}))


def run_dj(corpus_file: Path, scratch: Path) -> dict:
    out = scratch / "dj_out.json"
    env = {**os.environ, "DATA_JUICER_CACHE_HOME": str(scratch / "djcache"), "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(scratch / "hf")}
    proc = subprocess.run([str(DJ_PYTHON), str(SCRIPT), "--dj-child", str(corpus_file), str(out)],
                          env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"Data-Juicer child failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def dj_versions() -> dict:
    """Data-Juicer's and its datasets' versions, asked of its venv; {} without one."""
    out = {}
    if DJ_PYTHON.exists():
        code = "from importlib.metadata import version as v; print(v('py-data-juicer'), v('datasets'))"
        got = subprocess.run([str(DJ_PYTHON), "-c", code], capture_output=True, text=True)
        out["py-data-juicer"], _, out["datasets (DJ venv)"] = got.stdout.strip().partition(" ")
    return out
