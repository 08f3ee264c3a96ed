#!/usr/bin/env python
"""Data-cleaning benchmark: rixin's cleaning library against datatrove (and Data-Juicer).

    .venv/bin/python bench/clean.py [--docs 100000] [--repeats 5] [--no-dj] [--no-job]

What runs, on one generated corpus (seeded; English and ~10% Chinese, with planted exact
copies, near copies and junk, and the ground truth kept):

    stage       rixin (in-process library calls)   datatrove 0.10 (LocalPipelineExecutor)
    normalize   blocks.Normalize (ftfy + NFC + ws)  FTFYFormatter
    quality     quality.QualityFilter               GopherRepetitionFilter + GopherQualityFilter
    pii         pii.PiiRedactor (6 types)           PIIFormatter (e-mail + IP only)
    exact       dedup.normalized_hash + exact_dup.  ExactDedupSignature/FindDedups/Filter
    near        minhash_signature + near_dup_groups MinhashDedupSignature/Buckets/Cluster/Filter
    langid      langid.LanguageFilter               (skipped: needs a fastText model download)

Both sides are single process, single thread (OMP/BLAS/rayon pinned to 1, datatrove
workers=1); the tools alternate order every repeat; each stage is timed by wall clock around
the tool's own call (datatrove: around executor.run(), executor overhead included). End to end
= normalize + quality + exact + near (pii and langid are reported apart: the two sides do not
do the same work there). Data-Juicer, when /tmp/dj-venv exists, runs its closest ops in a
subprocess under that venv (this same file with --dj-child), interleaved with the others.
Results: bench/results/clean-<date>.json, .md and .png. Benchmarks are not tests.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "RAYON_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from clean_corpus import accuracy, make_corpus  # noqa: E402
from clean_peers import DJ_PYTHON, dj_child, dj_versions, run_datatrove, run_dj, run_rixin, run_rixin_job  # noqa: E402
from clean_report import CORE, markdown, plot, summarise  # noqa: E402
from common import RESULTS, command, load_avg, machine, results_stem, today, versions  # noqa: E402
from common import write_json, write_markdown  # noqa: E402

# The peers' packages may live in an overlay (`pip install --target`), appended so that the
# project's .venv (rixin, numpy, torch) always wins: see bench/README.md.
PEER_SITE = Path(os.environ.get("RIXIN_BENCH_SITE", "/tmp/bench-site"))
if PEER_SITE.is_dir() and "--dj-child" not in sys.argv:
    sys.path.append(str(PEER_SITE))
PACKAGES = ("rixin", "datatrove", "spacy", "jieba", "ftfy", "rensa", "rjieba", "py3langid", "numpy", "xxhash",
            "torch")
THREAD_PINS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS", "OPENBLAS_CORETYPE")
NOTES = ["datatrove: language routed per document by a CJK regex (a per-language pipeline, as FineWeb-2 "
         "does), English with spaCy's tokenizer, Chinese with spaCy+jieba; Gopher filters at their "
         "defaults, for Chinese min_avg_word_length and min_stop_words off; MinHash 5-word shingles, "
         "16 buckets x 8 hashes (=128, like rixin's 16 bands x 8 rows), 64-bit xxhash, its scratch files "
         "on /dev/shm; executor overhead (a multiprocess Manager per run) is included.",
         "datatrove 0.10.1 + xxhash 4.1 crash in MinHash ('Strings must be encoded before hashing'); the "
         "benchmark patches datatrove's xxhash wrapper to encode str first.",
         "rixin: default recipe thresholds (Gopher's, stop words off, plus alnum_chars and unique_words); "
         "MinHash over character 5-grams, 128 permutations, 16x8 bands, candidates verified by "
         "estimated Jaccard >= 0.8."]
DJ_NOTE = ("Data-Juicer: fix_unicode_mapper; words_num (50..100000) and word_repetition filters for "
           "English only (its word split is whitespace: Chinese would be one word per line), then "
           "character_repetition, special_characters, alphanumeric; clean_email + clean_ip; "
           "document_deduplicator (lowercase, ignore non-characters); document_minhash_deduplicator "
           "128 permutations 16x8, 5-shingles of words (English) or characters (Chinese). Runs in "
           "/tmp/dj-venv as a subprocess; its stage times are taken inside the child (the Arrow load "
           "counts in normalize).")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000, help="documents in the interleaved comparison")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--scale-docs", type=int, default=0,
                    help="also run rixin alone (one run, and the job path) on a corpus this large")
    ap.add_argument("--no-dj", action="store_true", help="skip Data-Juicer even if /tmp/dj-venv exists")
    ap.add_argument("--no-job", action="store_true", help="skip the rixin job-path measurement")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--report-from", type=Path, help="re-render the .md and .png of a results JSON")
    ap.add_argument("--dj-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    return ap.parse_args()


def report_from(path: Path) -> None:
    """Recompute the summary of a results JSON (in place) and re-render its .md and .png."""
    res = json.loads(path.read_text())
    runs = {name: [{**r, "bytes_in": r.get("bytes_in", res["corpus_mb"] * 1e6)} for r in tool_runs]
            for name, tool_runs in res["runs"].items()}
    res["summary"] = summarise(runs, res["docs"])
    path.write_text(json.dumps(res, indent=1, ensure_ascii=False))
    path.with_suffix(".md").write_text(markdown(res))
    plot(res, path.with_suffix(".png"))


def write_corpus(corpus, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for doc_id, text in zip(corpus.ids, corpus.texts):
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")


def rixin_extras(args, corpus, runs: dict, scratch: Path) -> tuple[dict, dict | None, dict | None]:
    """Once per run, rixin alone: cProfile of its slowest stage, the --scale-docs corpus, the job path."""
    slowest = max(("normalize", "quality", "pii", "exact", "near"),
                  key=lambda s: statistics.median(r["stages"][s]["s"] for r in runs["rixin"]))
    print(f"profiling rixin stage '{slowest}' ...", flush=True)
    profile = run_rixin(corpus.ids, corpus.texts, profile=slowest)["profile"]
    scale = job = None
    big = corpus
    if args.scale_docs:
        print(f"rixin alone on {args.scale_docs:,} documents ...", flush=True)
        big = make_corpus(args.scale_docs, args.seed)
        r = run_rixin(big.ids, big.texts)
        scale = {"docs": args.scale_docs, "stages": r["stages"], "accuracy": accuracy(big, r)}
    if not args.no_job:
        print(f"rixin job path on {len(big.ids):,} documents ...", flush=True)
        work = scratch / "job"
        work.mkdir()
        job = {"docs": len(big.ids), **run_rixin_job(big.ids, big.texts, work)}
    return profile, scale, job


def main() -> None:
    args = parse_args()
    if args.dj_child:
        return dj_child(*args.dj_child)
    if args.report_from:
        return report_from(args.report_from)

    date, cmd = today(), command("clean.py")
    stem = results_stem("clean", out=args.out)
    use_dj = DJ_PYTHON.exists() and not args.no_dj
    notes = NOTES + ([DJ_NOTE] if use_dj else [])
    print(f"generating {args.docs:,} documents ...", flush=True)
    corpus = make_corpus(args.docs, args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="rixin-bench-clean-", dir="/dev/shm"))
    corpus_file = scratch / "corpus.jsonl"
    write_corpus(corpus, corpus_file)
    runners = {"rixin": lambda d: run_rixin(corpus.ids, corpus.texts),
               "datatrove": lambda d: run_datatrove(corpus.ids, corpus.texts, d)}
    if use_dj:
        runners["data-juicer"] = lambda d: run_dj(corpus_file, d)
    runs: dict[str, list] = {name: [] for name in runners}
    loads = []
    try:
        for rep in range(args.repeats):
            order = list(runners) if rep % 2 == 0 else list(runners)[::-1]  # the tools alternate order
            for name in order:
                work = scratch / f"{name}-{rep}"
                work.mkdir()
                gc.collect()
                loads.append(load_avg())
                t0 = time.perf_counter()
                result = runners[name](work)
                result["wall_s"] = time.perf_counter() - t0
                result["bytes_in"] = corpus.nbytes
                runs[name].append(result)
                shutil.rmtree(work, ignore_errors=True)
                st = result["stages"]
                print(f"repeat {rep + 1}/{args.repeats} {name:11s} end to end "
                      f"{args.docs / sum(st[s]['s'] for s in CORE):8,.0f} docs/s  "
                      + "  ".join(f"{s} {st[s]['docs'] / st[s]['s']:,.0f}" for s in st)
                      + f"  (load {loads[-1]:.1f})", flush=True)
        summary = summarise(runs, args.docs)
        profile, scale, job = rixin_extras(args, corpus, runs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    js = [v[0] for v in corpus.near_jaccard.values()]
    jw = [v[1] for v in corpus.near_jaccard.values() if v[1] is not None]
    res = {
        "date": date, "command": cmd, "docs": args.docs, "repeats": args.repeats, "seed": args.seed,
        "corpus_mb": corpus.nbytes / 1e6, "load": loads,
        "machine": {**machine(), "threads": {k: os.environ.get(k) for k in THREAD_PINS}},
        "versions": {**versions(PACKAGES), **dj_versions()},
        "corpus": {"kinds": {k: corpus.kind.count(k) for k in ("clean", "exact", "near", "junk")},
                   "chinese": corpus.lang.count("zh"),
                   "near_jaccard": {"char5_min": min(js), "char5_median": statistics.median(js),
                                    "word5_min": min(jw), "word5_median": statistics.median(jw)}},
        "summary": summary,
        "accuracy": {name: accuracy(corpus, tool_runs[0]) for name, tool_runs in runs.items()},
        "runs": {name: [{"stages": r["stages"], "wall_s": r["wall_s"], "bytes_in": r["bytes_in"]} for r in tool_runs]
                 for name, tool_runs in runs.items()},
        "profile": profile, "scale": scale, "job": job, "notes": notes,
    }
    write_json(stem, res, ensure_ascii=False)
    write_markdown(stem, markdown(res))
    plot(res, stem.with_suffix(".png"))
    print(markdown(res))
    print(f"wrote {stem}.json, .md and .png")


if __name__ == "__main__":
    main()
