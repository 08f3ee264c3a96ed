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
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from machine import machine as machine_record  # noqa: E402

# The peers' packages may live in an overlay (`pip install --target`), appended so that the
# project's .venv (rixin, numpy, torch) always wins: see bench/README.md.
PEER_SITE = Path(os.environ.get("RIXIN_BENCH_SITE", "/tmp/bench-site"))
if PEER_SITE.is_dir() and "--dj-child" not in sys.argv:
    sys.path.append(str(PEER_SITE))
BANDWIDTH = 30e9  # bytes/s, DESIGN.md: memory bandwidth over both cores of the dev machine
CORE = ("normalize", "quality", "exact", "near")  # the stages both sides do alike
CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
DJ_PYTHON = Path("/tmp/dj-venv/bin/python")

# ---------------------------------------------------------------------------- the corpus

EN = {k: v.split("|") for k, v in {
    "subj": "the engineer|our team|a local farmer|the new manager|my neighbour|the committee|a young "
    "student|the city council|her brother|the research group|a visiting scholar|the old fisherman|"
    "the support staff|a careful reader|the hospital board|their lawyer|the museum curator|a tired "
    "driver|the village baker|our accountant|the chief editor|a quiet musician|the head nurse|the "
    "logistics company|a retired teacher|the school choir|the harbour master|two volunteers|the "
    "night watchman|a former pilot|the regional office|the youth club|a software developer|the "
    "tenants|the orchestra conductor|a travelling salesman|the parish priest|the data team",
    "verb": "reviewed|repaired|described|painted|discussed|ordered|measured|photographed|questioned|"
    "delivered|explained|rebuilt|studied|tested|ignored|praised|borrowed|cleaned|designed|inspected|"
    "translated|recorded|organised|sketched|announced|approved|rejected|printed|collected|compared|"
    "summarised|celebrated|launched|postponed|investigated|restored|catalogued|replaced|defended|"
    "financed|abandoned|assembled|documented|estimated|negotiated|rehearsed|surveyed|archived",
    "adj": "wooden|quarterly|ancient|broken|detailed|colourful|expensive|modest|crowded|fragile|remote|"
    "seasonal|northern|digital|handmade|public|noisy|elegant|unusual|heavy|narrow|bright|silent|rusty|"
    "generous|local|annual|careful|gentle|massive|simple|rural|coastal|medieval|temporary|hidden|"
    "ambitious|ordinary|curious|spacious|delicate|reliable|outdated|peaceful|sturdy|famous|humble",
    "noun": "bridge|report|garden|engine|library|painting|contract|harbour|schedule|budget|festival|"
    "telescope|recipe|fountain|railway|manuscript|vineyard|warehouse|orchestra|lighthouse|laboratory|"
    "proposal|cathedral|marketplace|spreadsheet|greenhouse|bicycle|workshop|newsletter|carpet|tunnel|"
    "compass|ledger|sculpture|curriculum|satellite|pipeline|archive|ferry|chapel|quarry|monastery|"
    "observatory|bakery|timetable|mural|tapestry|windmill|aqueduct|granary|invoice|prototype|survey",
    "prep": "near|behind|inside|beyond|across|above|beneath|beside|around|outside|along|opposite",
    "place": "the river|the station|the old mill|the town square|the northern hills|the harbour|the "
    "campus|the market|the factory gate|the city wall|the main road|the valley|the coast|the border|"
    "the airport|the stadium|the orchard|the old quarter|the lake|the ring road|the dockyard",
    "time": "Last winter|On Monday morning|After the storm|Before lunch|During the festival|Early in "
    "spring|Late last night|Every autumn|Two weeks ago|At the end of the year|Since the summer|Before "
    "the meeting|Later that evening|In the following month|Over the weekend|Shortly after dawn",
    "adv": "carefully|quickly|reluctantly|proudly|quietly|openly|patiently|eagerly|briefly|thoroughly|"
    "happily|slowly|calmly|cheerfully|rarely|gladly|nervously|secretly|formally|repeatedly",
    "conn": "because|although|while|after|before|since|even though|so that|until|whenever|once",
}.items()}
EN_TEMPLATES = [
    "{time}, {subj} {adv} {verb} the {adj} {noun} {prep} {place}.",
    "{subj} {verb} a {adj} {noun} {conn} {subj2} {verb2} the {noun2}.",
    "The {adj} {noun} {prep} {place} was {verb} by {subj} in {year}.",
    "{subj} {adv} {verb} the {noun}, and {subj2} {verb2} a {adj} {noun2} {prep} {place}.",
    "Nobody expected that {name} would have {verb} the {adj} {noun} so {adv}.",
    "{conn_c} {subj} {verb} the {noun}, the {adj} {noun2} stayed {prep} {place}.",
    "Why had {subj} {verb} every {adj} {noun} {prep} {place}?",
    "According to {name}, the {noun} {prep} {place} needs to be {verb} {adv}.",
    "In {year} the {noun} cost about {num} pounds, which {subj} {verb} as {adj}.",
    "{name} and {name2} {verb} the {noun2} with {subj}.",
    "It is said that the {adj} {noun} of {name} was {verb} {prep} {place} {time_l}.",
]
SYLLABLES = "ka ro mi ten sa lu vor an del ri ko mar is bel tor en fa ni gul os per ha".split()
ZH = {k: v.split("|") for k, v in {
    "subj": "我们|研究人员|这家公司|当地居民|年轻的工程师|学校的老师|市政府|一位医生|志愿者团队|博物馆馆长|"
    "农民们|新来的经理|出租车司机|图书管理员|大学生|记者|老教授|设计师|工人们|邻居",
    "time": "今天上午|去年冬天|最近几个月|周末的时候|会议结束后|春节前夕|每年秋天|昨天晚上|下个星期|几年以前|"
    "这段时间|开学以后",
    "place": "在河边|在市中心|在实验室里|在老街上|在图书馆|在港口附近|在山脚下|在工厂门口|在火车站|在郊区|"
    "在广场上|在海边",
    "verb": "讨论了|修复了|设计了|参观了|介绍了|整理了|检查了|记录了|发布了|改进了|测试了|翻译了|准备了|"
    "拍摄了|分析了|安排了|调查了|展示了",
    "adj": "古老|复杂|新鲜|安静|详细|昂贵|简单|漂亮|热闹|独特|重要|普通|传统|现代|明亮|狭窄",
    "noun": "桥梁|报告|花园|发动机|画作|合同|时间表|预算|节日活动|望远镜|菜谱|喷泉|铁路|手稿|葡萄园|仓库|"
    "乐团|灯塔|方案|教堂|市场|表格|温室|自行车|工作坊|地毯|隧道|雕塑|课程|卫星|茶叶|瓷器",
    "adv": "认真地|很快地|耐心地|悄悄地|仔细地|高兴地|慢慢地|主动地",
    "conn": "因为|虽然|所以|但是|而且|于是|后来|同时",
}.items()}
ZH_TEMPLATES = [
    "{time}，{subj}{place}{adv}{verb}{adj}的{noun}。",
    "{subj}{verb}一份{adj}的{noun}，{conn}{subj2}{verb2}{noun2}。",
    "{conn}{noun}很{adj}，{subj}还是{adv}{verb}{noun2}。",
    "{place}，{subj}和{subj2}一起{verb}{adj}的{noun}。",
    "大家都没想到{subj}会{place}{verb}那个{adj}的{noun}。",
    "关于{noun}的问题，{subj}{time}已经{verb}{noun2}。",
    "{year}年，{subj}{place}{verb}{num}个{noun}。",
]
SYMBOLS = "# @@ $$ % && *** ~~ | >> << {} [] ... !!! ^^ += // == -- ;; ::".split()
PII = ["Write to {user}@{host}.org for a copy.", "Call +44 20 7946 {d4} before noon.",
       "The upload server is at 81.{a}.{b}.{c} today.", "联系邮箱 {user}@{host}.com 。"]
MOJIBAKE = ["cafÃ©", "naÃ¯ve", "rÃ©sumÃ©", "&amp;", "don\u2019t", "caf\u00e9\u200b"]


@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]
    kind: list[str]  # clean | exact | near | junk
    lang: list[str]  # en | zh
    source: dict[str, str] = field(default_factory=dict)  # copy id -> original id
    detail: dict[str, str] = field(default_factory=dict)  # junk kind / near edit kind
    near_jaccard: dict[str, tuple] = field(default_factory=dict)  # (char-5, word-5 or None for zh)

    @property
    def nbytes(self) -> int:
        return sum(len(t.encode()) for t in self.texts)


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        names = {(a + b + c).capitalize() for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES}
        self.names = sorted(names)

    def _fill(self, template: str, words: dict) -> str:
        rng = self.rng

        def pick(m: re.Match) -> str:
            slot = m.group(1).rstrip("2")
            if slot == "name":
                return rng.choice(self.names)
            if slot == "year":
                return str(rng.randint(1850, 2024))
            if slot == "num":
                return str(rng.randint(2, 9000))
            value = rng.choice(words[slot.removesuffix("_l").removesuffix("_c")])
            if slot.endswith("_l"):
                value = value[0].lower() + value[1:]
            return value.capitalize() if slot.endswith("_c") else value

        text = re.sub(r"\{(\w+)\}", pick, template)
        return text[0].upper() + text[1:]

    def english(self) -> str:
        rng = self.rng
        paras = [" ".join(self._fill(rng.choice(EN_TEMPLATES), EN) for _ in range(rng.randint(3, 8)))
                 for _ in range(rng.randint(2, 6))]
        if rng.random() < 0.08:
            paras[rng.randrange(len(paras))] += " " + self._pii(rng.choice(PII[:3]))
        if rng.random() < 0.03:
            paras[0] = paras[0].replace(" the ", f" {rng.choice(MOJIBAKE)} the ", 1)
        if rng.random() < 0.05:
            paras = [p.replace(". ", ".  ", 3) + " \t" for p in paras]
        return "\n\n".join(paras)

    def chinese(self) -> str:
        rng = self.rng
        paras = ["".join(self._fill(rng.choice(ZH_TEMPLATES), ZH) for _ in range(rng.randint(3, 7)))
                 for _ in range(rng.randint(2, 5))]
        if rng.random() < 0.08:
            paras[-1] += self._pii(PII[3])
        return "\n\n".join(paras)

    def _pii(self, template: str) -> str:
        rng = self.rng
        return template.format(user=rng.choice(self.names).lower() + str(rng.randint(1, 99)),
                               host=rng.choice(self.names).lower(), d4=rng.randint(1000, 9999),
                               a=rng.randint(1, 254), b=rng.randint(1, 254), c=rng.randint(1, 254))

    def junk(self) -> tuple[str, str]:
        rng = self.rng
        what = rng.choice(["symbols", "repeated_lines", "too_short"])
        if what == "symbols":
            tokens = [rng.choice(SYMBOLS) if rng.random() < 0.8 else rng.choice(EN["noun"])
                      for _ in range(rng.randint(80, 300))]
            text = "\n".join(" ".join(tokens[i:i + 10]) for i in range(0, len(tokens), 10))
        elif what == "repeated_lines":
            line = self._fill(rng.choice(EN_TEMPLATES), EN)
            lines = [line] * rng.randint(12, 40) + [self._fill(rng.choice(EN_TEMPLATES), EN)]
            text = "\n".join(lines)
        else:
            text = " ".join(self._fill(rng.choice(EN_TEMPLATES), EN) for _ in range(rng.randint(1, 2)))
        return text, what

    def exact_copy(self, text: str) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.4:
            return text
        if r < 0.6:
            return text.upper() if rng.random() < 0.5 else text.lower()
        if r < 0.8:
            return "  " + text.replace(" ", "  ").replace("\n\n", "\n\n\n") + "\n"
        return text.replace(",", "").replace(". ", " . ").replace("，", ",")

    def near_copy(self, text: str, chinese: bool) -> tuple[str, str, tuple[float, float]]:
        """~5% of words (Chinese: ~2% of characters) changed, scattered or in 1-3 spans; the
        edit shrinks until character 5-gram Jaccard >= 0.85 (well above the 0.8 threshold)."""
        rng = self.rng
        how = rng.choice(["scattered", "spans"])
        frac = 0.05 if not chinese else 0.02
        for _ in range(30):
            units = list(text) if chinese else text.split(" ")
            k = max(1, round(frac * len(units)))
            fresh = (lambda: rng.choice("山水木火土日月云风雨花草")) if chinese else \
                (lambda: rng.choice(EN[rng.choice(["noun", "adj", "verb", "adv"])]))
            if how == "scattered":
                for i in rng.sample(range(len(units)), k):
                    units[i] = fresh()
            else:
                for span in _split_int(k, rng.randint(1, 3), rng):
                    at = rng.randrange(max(1, len(units) - span))
                    op = rng.choice(["replace", "delete", "insert"])
                    if op == "replace":
                        units[at:at + span] = [fresh() for _ in range(span)]
                    elif op == "delete":
                        del units[at:at + span]
                    else:
                        units[at:at] = [fresh() for _ in range(span)]
            copy = "".join(units) if chinese else " ".join(units)
            jc, jw = jaccard_char5(text, copy), (None if chinese else jaccard_word5(text, copy))
            if jc >= 0.85 and copy != text:
                return copy, how, (jc, jw)
            frac *= 0.8
        raise RuntimeError("could not make a near copy")


def _split_int(total: int, parts: int, rng: random.Random) -> list[int]:
    parts = min(parts, total)
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def jaccard_char5(a: str, b: str) -> float:
    na, nb = _norm(a), _norm(b)
    sa = {na[i:i + 5] for i in range(len(na) - 4)}
    sb = {nb[i:i + 5] for i in range(len(nb) - 4)}
    return len(sa & sb) / max(1, len(sa | sb))


def jaccard_word5(a: str, b: str) -> float:
    wa, wb = _norm(a).split(), _norm(b).split()
    sa = {tuple(wa[i:i + 5]) for i in range(len(wa) - 4)}
    sb = {tuple(wb[i:i + 5]) for i in range(len(wb) - 4)}
    return len(sa & sb) / max(1, len(sa | sb))


def make_corpus(n: int, seed: int = 20240601) -> Corpus:
    """n documents: 5% exact copies, 5% near copies, 5% junk, the rest clean (10% Chinese).
    Copies come after their original; the first 2% of positions are clean originals."""
    gen = Generator(seed)
    rng = random.Random(seed + 1)
    n_exact = n_near = n_junk = n // 20
    head = max(2, n // 50)
    kinds = ["exact"] * n_exact + ["near"] * n_near + ["junk"] * n_junk
    kinds += ["clean"] * (n - head - len(kinds))
    rng.shuffle(kinds)
    kinds = ["clean"] * head + kinds
    c = Corpus([], [], [], [])
    originals: list[int] = []
    for i, kind in enumerate(kinds):
        doc_id = f"d{i:06d}"
        lang = "en"
        if kind == "clean":
            lang = "zh" if rng.random() < 0.10 else "en"
            text = gen.chinese() if lang == "zh" else gen.english()
            originals.append(i)
        elif kind == "junk":
            text, c.detail[doc_id] = gen.junk()
        else:
            src = rng.choice(originals)
            lang, c.source[doc_id] = c.lang[src], c.ids[src]
            if kind == "exact":
                text = gen.exact_copy(c.texts[src])
            else:
                text, c.detail[doc_id], c.near_jaccard[doc_id] = gen.near_copy(c.texts[src], lang == "zh")
        c.ids.append(doc_id)
        c.texts.append(text)
        c.kind.append(kind)
        c.lang.append(lang)
    return c


# ---------------------------------------------------------------------------- rixin


def run_rixin(ids: list[str], texts: list[str], profile: str | None = None) -> dict:
    """The per-document blocks, then exact and near dedup, each stage timed alone; the stage
    named by `profile` runs under cProfile (its top functions are returned)."""
    import cProfile
    import pstats
    from contextlib import contextmanager

    import numpy as np

    from rixin.data.blocks import Doc, Normalize
    from rixin.data.dedup import exact_duplicates, minhash_signature, near_duplicate_groups, normalized_hash
    from rixin.data.langid import LanguageFilter
    from rixin.data.pii import PiiRedactor
    from rixin.data.quality import QualityFilter
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
    proc = subprocess.run([str(DJ_PYTHON), __file__, "--dj-child", str(corpus_file), str(out)],
                          env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"Data-Juicer child failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------- accuracy


def accuracy(c: Corpus, res: dict) -> dict:
    """Quality: share of planted junk removed by the per-document filters and of the other
    documents wrongly removed. Dedup, over the documents that reached it: a group is an
    original and its copies; removing all but one member of a group is right, anything more
    (or any removal outside a group) is a false positive."""
    passed = set(res["after_filters"])
    junk = [d for d, k in zip(c.ids, c.kind) if k == "junk"]
    good = [d for d, k in zip(c.ids, c.kind) if k != "junk"]
    removed = set(res["exact_removed"]) | set(res["near_removed"])
    group_of = {d: c.source.get(d, d) for d in c.ids}
    members: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for d in passed:
        g = group_of[d]
        members[g] = members.get(g, 0) + 1
        dropped[g] = dropped.get(g, 0) + (d in removed)
    tp = sum(min(dropped[g], members[g] - 1) for g in members)
    should = sum(m - 1 for m in members.values())
    caught = {"exact": [0, 0], "near": [0, 0], "near:scattered": [0, 0], "near:spans": [0, 0],
              "near:zh": [0, 0]}
    for d, src in c.source.items():
        if d in passed and src in passed:
            kind = c.kind[int(d[1:])]
            keys = [kind] if kind == "exact" else ["near", f"near:{c.detail[d]}"]
            if kind == "near" and c.lang[int(d[1:])] == "zh":
                keys.append("near:zh")
            for k in keys:
                caught[k][1] += 1
                caught[k][0] += (d in removed) or (src in removed)
    by_reason = {"exact": len(res["exact_removed"]), "near": len(res["near_removed"])}
    return {
        "junk_removed": sum(d not in passed for d in junk) / len(junk),
        "junk_removed_by_kind": {
            kind: sum(d not in passed for d in junk if c.detail[d] == kind) /
            max(1, sum(c.detail[d] == kind for d in junk)) for kind in ("symbols", "repeated_lines", "too_short")},
        "clean_wrongly_removed": sum(d not in passed for d in good) / len(good),
        "zh_wrongly_removed": sum(d not in passed for d, lang in zip(c.ids, c.lang) if lang == "zh"
                                  and c.kind[int(d[1:])] != "junk") / max(1, c.lang.count("zh")),
        "dedup_precision": tp / max(1, len(removed)),
        "dedup_recall": tp / max(1, should),
        "dedup_removed": by_reason,
        "recall_by_copy_kind": {k: (v[0] / v[1] if v[1] else None) for k, v in caught.items()},
    }


# ---------------------------------------------------------------------------- machine and report


def machine() -> dict:
    return {**machine_record(), "threads": {k: os.environ.get(k) for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS", "OPENBLAS_CORETYPE")}}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("rixin", "datatrove", "spacy", "jieba", "ftfy", "rensa", "rjieba", "py3langid", "numpy",
                 "xxhash", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    if DJ_PYTHON.exists():
        code = "from importlib.metadata import version as v; print(v('py-data-juicer'), v('datasets'))"
        got = subprocess.run([str(DJ_PYTHON), "-c", code], capture_output=True, text=True)
        out["py-data-juicer"], _, out["datasets (DJ venv)"] = got.stdout.strip().partition(" ")
    return out


def load_avg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def summarise(runs: dict[str, list[dict]], n_docs: int) -> dict:
    """Median docs/s per stage and tool, median per-repeat ratio rixin / peer, ours / limit."""
    stages = ["normalize", "quality", "pii", "exact", "near", "langid", "end_to_end", "end_to_end+pii"]

    def dps(run: dict, stage: str) -> float | None:
        st = run["stages"]
        if stage.startswith("end_to_end"):
            names = [*CORE, "pii"] if stage.endswith("+pii") else list(CORE)
            return n_docs / sum(st[s]["s"] for s in names)
        return st[stage]["docs"] / st[stage]["s"] if stage in st else None

    out: dict = {}
    for stage in stages:
        row: dict = {}
        for tool, tool_runs in runs.items():
            vals = [v for v in (dps(r, stage) for r in tool_runs) if v is not None]
            row[tool] = statistics.median(vals) if vals else None
        for peer in runs:
            if peer == "rixin":
                continue
            pairs = [dps(a, stage) / dps(b, stage) for a, b in zip(runs["rixin"], runs[peer])
                     if dps(a, stage) and dps(b, stage)]
            row[f"rixin/{peer}"] = statistics.median(pairs) if pairs else None
            row[f"rixin/{peer} range"] = [min(pairs), max(pairs)] if pairs else None
        rx = runs["rixin"]
        if stage.startswith("end_to_end"):
            per_s = [rx_run["bytes_in"] / sum(rx_run["stages"][s]["s"] for s in
                                             ([*CORE, "pii"] if stage.endswith("+pii") else CORE)) for rx_run in rx]
        else:
            per_s = [r["stages"][stage]["bytes"] / r["stages"][stage]["s"] for r in rx]
        row["rixin_MB_per_s"] = statistics.median(per_s) / 1e6
        row["rixin/limit"] = statistics.median(per_s) / BANDWIDTH
        out[stage] = row
    return out


def fmt(x, spec: str = ",.0f") -> str:
    return "—" if x is None else format(x, spec)


def ratio_cell(row: dict, peer: str) -> str:
    """'median (min-max over repeats)' of the per-repeat ratio rixin / peer."""
    if row.get(f"rixin/{peer}") is None:
        return "—"
    low, high = row[f"rixin/{peer} range"]
    return f"**{row[f'rixin/{peer}']:.2f}** ({low:.2f}–{high:.2f})"


def markdown(res: dict) -> str:
    tools = list(res["runs"])
    lines = [f"# Data cleaning: rixin vs {' vs '.join(tools[1:])} ({res['date']})", "",
             f"Command: `{res['command']}`", "",
             f"{res['docs']:,} generated documents ({res['corpus_mb']:.1f} MB UTF-8), {res['repeats']} repeats, "
             f"tools alternating order each repeat; single process, one thread each. Load average seen "
             f"(1-min) from {min(res['load']):.1f} to {max(res['load']):.1f} on {res['machine']['nproc']} cores.",
             "", "## Throughput (documents/s into each stage, median over repeats)", ""]
    head = "| stage | " + " | ".join(tools) + " | " + " | ".join(f"rixin ÷ {t} (min–max)" for t in tools[1:])
    head += " | rixin MB/s | rixin ÷ limit (30 GB/s) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for stage, row in res["summary"].items():
        cells = [fmt(row.get(t)) for t in tools] + [ratio_cell(row, t) for t in tools[1:]]
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {row['rixin_MB_per_s']:.2f} | "
                     f"{row['rixin/limit']:.1e} |")
    lines += ["", "end_to_end = normalize + quality + exact + near over all input documents; +pii adds the "
              "PII stage (rixin redacts 6 types with validation, datatrove e-mail and IP only, DJ e-mail and "
              "IP). langid is rixin only (datatrove's and DJ's need a fastText model download).", "",
              "## Accuracy against the planted ground truth", "",
              "| tool | junk removed | clean wrongly removed | Chinese wrongly removed | dedup precision | "
              "dedup recall | exact copies caught | near caught | near (scattered edits) | "
              "near (span edits) | near (Chinese) |", "|" + "---|" * 11]
    for tool, acc in res["accuracy"].items():
        rc = acc["recall_by_copy_kind"]
        lines.append(f"| {tool} | {acc['junk_removed']:.3f} | {acc['clean_wrongly_removed']:.4f} | "
                     f"{acc['zh_wrongly_removed']:.4f} | {acc['dedup_precision']:.4f} | {acc['dedup_recall']:.4f} | "
                     + " | ".join(fmt(rc[k], ".3f") for k in ("exact", "near", "near:scattered", "near:spans",
                                                               "near:zh")) + " |")
    j = res["corpus"]["near_jaccard"]
    lines += ["", f"Planted near copies: character 5-gram Jaccard min {j['char5_min']:.3f}, median "
              f"{j['char5_median']:.3f}; word 5-gram Jaccard (English) min {j['word5_min']:.3f}, median "
              f"{j['word5_median']:.3f}.", ""]
    if res.get("job"):
        job = res["job"]
        lines += ["## rixin job path (split_into_shards → process_shard per shard → find_duplicates, no Ray)", "",
                  f"{job['docs']:,} documents, default recipe (all blocks incl. langid and PII): "
                  f"{job['docs_per_s']:,.0f} docs/s end to end ({job['total_s']:.1f} s: split {job['split_s']:.1f} s, "
                  f"shards {job['process_shards_s']:.1f} s, find_duplicates {job['find_duplicates_s']:.1f} s).", ""]
    if res.get("scale"):
        sc = res["scale"]
        lines += [f"## rixin alone at {sc['docs']:,} documents (one run)", "",
                  "| stage | docs/s | s |", "|---|---|---|"]
        for stage, row in sc["stages"].items():
            lines.append(f"| {stage} | {row['docs'] / row['s']:,.0f} | {row['s']:.1f} |")
        a = sc["accuracy"]
        lines += ["", f"Accuracy: junk removed {a['junk_removed']:.3f}, clean wrongly removed "
                  f"{a['clean_wrongly_removed']:.4f}, dedup precision {a['dedup_precision']:.4f}, recall "
                  f"{a['dedup_recall']:.4f}.", ""]
    if res.get("profile"):
        lines += [f"## cProfile of rixin's slowest stage ({res['profile']['stage']}), top functions by own time",
                  "", "| function | calls | own s | cumulative s |", "|---|---|---|---|"]
        lines += [f"| `{r['function']}` | {r['calls']:,} | {r['tottime_s']} | {r['cumtime_s']} |"
                  for r in res["profile"]["top"]]
        lines.append("")
    m = res["machine"]
    lines += ["## Machine and versions", "", f"{m['nproc']} cores ({m['cpu']}), {m['memory']}, flags "
              f"{' '.join(m['flags'])}; Python {m['python']}; thread pins {m['threads']}.", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()), ""]
    lines += [f"Notes: {note}" for note in res["notes"]]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in res["summary"] if s != "end_to_end+pii"]
    tools = list(res["runs"])
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(tools)
    for k, tool in enumerate(tools):
        vals = [res["summary"][s].get(tool) or 0 for s in stages]
        bars = ax.bar([i + (k - (len(tools) - 1) / 2) * width for i in range(len(stages))], vals, width, label=tool)
        for bar, v in zip(bars, vals):
            if v:
                ax.annotate(f"{v:,.0f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom",
                            fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_ylim(top=3 * max(v or 0 for s in stages for v in (res["summary"][s].get(t) for t in tools)))
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("documents / s (log scale, median)")
    ax.set_title(f"Cleaning throughput, {res['docs']:,} docs, {res['repeats']} repeats, 1 process each "
                 f"({res['date']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000, help="documents in the interleaved comparison")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--scale-docs", type=int, default=0,
                    help="also run rixin alone (one run, and the job path) on a corpus this large")
    ap.add_argument("--no-dj", action="store_true", help="skip Data-Juicer even if /tmp/dj-venv exists")
    ap.add_argument("--no-job", action="store_true", help="skip the rixin job-path measurement")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--report-from", type=Path, help="re-render the .md and .png of a results JSON")
    ap.add_argument("--dj-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dj_child:
        return dj_child(*args.dj_child)
    if args.report_from:
        res = json.loads(args.report_from.read_text())
        runs = {name: [{**r, "bytes_in": r.get("bytes_in", res["corpus_mb"] * 1e6)} for r in tool_runs]
                for name, tool_runs in res["runs"].items()}
        res["summary"] = summarise(runs, res["docs"])
        args.report_from.write_text(json.dumps(res, indent=1, ensure_ascii=False))
        args.report_from.with_suffix(".md").write_text(markdown(res))
        return plot(res, args.report_from.with_suffix(".png"))

    date = time.strftime("%Y-%m-%d")
    command = " ".join([".venv/bin/python", "bench/clean.py", *sys.argv[1:]])
    use_dj = DJ_PYTHON.exists() and not args.no_dj
    notes = ["datatrove: language routed per document by a CJK regex (a per-language pipeline, as FineWeb-2 "
             "does), English with spaCy's tokenizer, Chinese with spaCy+jieba; Gopher filters at their "
             "defaults, for Chinese min_avg_word_length and min_stop_words off; MinHash 5-word shingles, "
             "16 buckets x 8 hashes (=128, like rixin's 16 bands x 8 rows), 64-bit xxhash, its scratch files "
             "on /dev/shm; executor overhead (a multiprocess Manager per run) is included.",
             "datatrove 0.10.1 + xxhash 4.1 crash in MinHash ('Strings must be encoded before hashing'); the "
             "benchmark patches datatrove's xxhash wrapper to encode str first.",
             "rixin: default recipe thresholds (Gopher's, stop words off, plus alnum_chars and unique_words); "
             "MinHash over character 5-grams, 128 permutations, 16x8 bands, candidates verified by "
             "estimated Jaccard >= 0.8."]
    if use_dj:
        notes.append("Data-Juicer: fix_unicode_mapper; words_num (50..100000) and word_repetition filters for "
                     "English only (its word split is whitespace: Chinese would be one word per line), then "
                     "character_repetition, special_characters, alphanumeric; clean_email + clean_ip; "
                     "document_deduplicator (lowercase, ignore non-characters); document_minhash_deduplicator "
                     "128 permutations 16x8, 5-shingles of words (English) or characters (Chinese). Runs in "
                     "/tmp/dj-venv as a subprocess; its stage times are taken inside the child (the Arrow load "
                     "counts in normalize).")
    print(f"generating {args.docs:,} documents ...", flush=True)
    corpus = make_corpus(args.docs, args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="rixin-bench-clean-", dir="/dev/shm"))
    corpus_file = scratch / "corpus.jsonl"
    with corpus_file.open("w", encoding="utf-8") as f:
        for doc_id, text in zip(corpus.ids, corpus.texts):
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    runners = {"rixin": lambda d: run_rixin(corpus.ids, corpus.texts),
               "datatrove": lambda d: run_datatrove(corpus.ids, corpus.texts, d)}
    if use_dj:
        runners["data-juicer"] = lambda d: run_dj(corpus_file, d)
    runs: dict[str, list] = {name: [] for name in runners}
    loads = []
    try:
        for rep in range(args.repeats):
            order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
            for name in order:
                work = scratch / f"{name}-{rep}"
                work.mkdir()
                gc.collect()
                loads.append(load_avg()[0])
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    js = [v[0] for v in corpus.near_jaccard.values()]
    jw = [v[1] for v in corpus.near_jaccard.values() if v[1] is not None]
    res = {
        "date": date, "command": command, "docs": args.docs, "repeats": args.repeats, "seed": args.seed,
        "corpus_mb": corpus.nbytes / 1e6, "load": loads, "machine": machine(), "versions": versions(),
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
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"clean-{date}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    stem.with_suffix(".md").write_text(markdown(res))
    plot(res, stem.with_suffix(".png"))
    print(markdown(res))
    print(f"wrote {stem}.json, .md and .png")


if __name__ == "__main__":
    main()
