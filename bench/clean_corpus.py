"""The cleaning benchmark's corpus and its ground truth: seeded generated documents (English
and ~10% Chinese) with planted exact copies, near copies and junk, and the scoring of a tool's
output against what was planted."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field


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
