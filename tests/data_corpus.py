"""A generated corpus for the cleaning-block tests: seeded, built from word lists written here.

English and Chinese documents from sentence templates; exact copies (case, spacing and
punctuation changed) and near copies (~5% of English words or ~1.5% of Chinese characters
replaced, Jaccard 0.85-0.95 on the word 5-gram shingles of rixin.data.dedup); PII of every type in several
formats with look-alikes that are not PII; and junk of the kinds the quality rules target.
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass, field

from rixin.data.blocks import Doc
from rixin.data.dedup import shingles
from rixin.data.pii import cn_id_check_char, luhn_ok

# ---------------------------------------------------------------- English and Chinese text

EN = {
    "subj": "the engineer|our team|a local farmer|the new manager|my neighbour|the committee|"
    "a young student|the city council|her brother|the research group|a visiting scholar|"
    "the old fisherman|the support staff|a careful reader|the hospital board|their lawyer|"
    "the museum curator|a tired driver|the village baker|our accountant|the chief editor|"
    "a quiet musician|the head nurse|the logistics company|a retired teacher|the school choir",
    "verb": "reviewed|repaired|described|painted|discussed|ordered|measured|photographed|"
    "questioned|delivered|explained|rebuilt|studied|tested|ignored|praised|borrowed|cleaned|"
    "designed|inspected|translated|recorded|organised|sketched|announced|approved|rejected|"
    "printed|collected|compared|summarised|celebrated|launched|postponed|investigated",
    "adj": "wooden|quarterly|ancient|broken|detailed|colourful|expensive|modest|crowded|"
    "fragile|remote|seasonal|northern|digital|handmade|public|noisy|elegant|unusual|heavy|"
    "narrow|bright|silent|rusty|generous|local|annual|careful|gentle|massive|simple|rural",
    "noun": "bridge|report|garden|engine|library|painting|contract|harbour|schedule|budget|"
    "festival|telescope|recipe|fountain|railway|manuscript|vineyard|warehouse|orchestra|"
    "lighthouse|laboratory|proposal|cathedral|marketplace|spreadsheet|greenhouse|bicycle|"
    "workshop|newsletter|carpet|tunnel|compass|ledger|sculpture|curriculum|satellite",
    "prep": "near|behind|inside|beyond|across|above|beneath|beside|around|outside",
    "place": "the river|the station|the old mill|the town square|the northern hills|the harbour|"
    "the campus|the market|the factory gate|the city wall|the main road|the valley|the coast",
    "time": "Last winter|On Monday morning|After the storm|Before lunch|During the festival|"
    "Early in spring|Late last night|Every autumn|Two weeks ago|At the end of the year|"
    "Since the summer|Before the meeting|Later that evening|In the following month",
    "adv": "carefully|quickly|reluctantly|proudly|quietly|openly|patiently|eagerly|briefly|"
    "thoroughly|happily|slowly|calmly|cheerfully|rarely|gladly",
    "conn": "because|although|while|after|before|since|even though|so that|until|whenever",
}
EN = {k: v.split("|") for k, v in EN.items()}
EN_TEMPLATES = [
    "{time}, {subj} {adv} {verb} the {adj} {noun} {prep} {place}.",
    "{subj} {verb} a {adj} {noun} {conn} {subj2} {verb2} the {noun2}.",
    "The {adj} {noun} {prep} {place} was {verb} by {subj} {time_l}.",
    "{subj} {adv} {verb} the {noun}, and {subj2} {verb2} a {adj} {noun2} {prep} {place}.",
    "Nobody expected that {subj} would have {verb} the {adj} {noun} so {adv}.",
    "{conn_c} {subj} {verb} the {noun}, the {adj} {noun2} stayed {prep} {place}.",
    "Why had {subj} {verb} every {adj} {noun} {prep} {place}?",
    "According to {subj}, the {noun} {prep} {place} needs to be {verb} {adv}.",
]

ZH = {
    "subj": "我们|研究人员|这家公司|当地居民|年轻的工程师|学校的老师|市政府|一位医生|"
    "志愿者团队|博物馆馆长|农民们|新来的经理|出租车司机|图书管理员|大学生|记者",
    "time": "今天上午|去年冬天|最近几个月|周末的时候|会议结束后|春节前夕|每年秋天|"
    "昨天晚上|下个星期|几年以前|这段时间|开学以后",
    "place": "在河边|在市中心|在实验室里|在老街上|在图书馆|在港口附近|在山脚下|在工厂门口|"
    "在火车站|在郊区|在广场上|在海边",
    "verb": "讨论了|修复了|设计了|参观了|介绍了|整理了|检查了|记录了|发布了|改进了|"
    "测试了|翻译了|准备了|拍摄了|分析了|安排了|调查了|展示了",
    "adj": "古老|复杂|新鲜|安静|详细|昂贵|简单|漂亮|热闹|独特|重要|普通|传统|现代|明亮|狭窄",
    "noun": "桥梁|报告|花园|发动机|画作|合同|时间表|预算|节日活动|望远镜|菜谱|喷泉|"
    "铁路|手稿|葡萄园|仓库|乐团|灯塔|方案|教堂|市场|表格|温室|自行车|工作坊|地毯|"
    "隧道|雕塑|课程|卫星|茶叶|瓷器",
    "adv": "认真地|很快地|耐心地|悄悄地|仔细地|高兴地|慢慢地|主动地",
    "conn": "因为|虽然|所以|但是|而且|于是|后来|同时",
}
ZH = {k: v.split("|") for k, v in ZH.items()}
ZH_TEMPLATES = [
    "{time}，{subj}{place}{adv}{verb}{adj}的{noun}。",
    "{subj}{verb}一份{adj}的{noun}，{conn}{subj2}{verb2}{noun2}。",
    "{conn}{noun}很{adj}，{subj}还是{adv}{verb}{noun2}。",
    "{place}，{subj}和{subj2}一起{verb}{adj}的{noun}。",
    "大家都没想到{subj}会{place}{verb}那个{adj}的{noun}。",
    "关于{noun}的问题，{subj}{time}已经{verb}{noun2}。",
]


def _fill(rng: random.Random, template: str, words: dict[str, list[str]]) -> str:
    def pick(name: str) -> str:
        base = name.rstrip("2").removesuffix("_l").removesuffix("_c")
        value = rng.choice(words[base])
        if name == "time_l":
            value = value[0].lower() + value[1:]
        if name == "conn_c":
            value = value.capitalize()
        return value

    text = re.sub(r"\{(\w+)\}", lambda m: pick(m.group(1)), template)
    return text[0].upper() + text[1:]


def english_doc(rng: random.Random, paragraphs: tuple[int, int] = (2, 4)) -> str:
    paras = []
    for _ in range(rng.randint(*paragraphs)):
        sentences = [_fill(rng, rng.choice(EN_TEMPLATES), EN) for _ in range(rng.randint(3, 6))]
        paras.append(" ".join(sentences))
    return "\n\n".join(paras)


def chinese_doc(rng: random.Random, paragraphs: tuple[int, int] = (2, 3)) -> str:
    paras = []
    for _ in range(rng.randint(*paragraphs)):
        paras.append("".join(_fill(rng, rng.choice(ZH_TEMPLATES), ZH) for _ in range(rng.randint(3, 6))))
    return "\n\n".join(paras)


FRENCH = [
    "Le petit village se trouve au bord de la rivière, entouré de champs et de forêts.",
    "Nous avons passé la soirée à discuter de politique et de littérature avec nos voisins.",
    "Elle a toujours voulu apprendre à jouer du piano, mais elle n'avait jamais le temps.",
    "Les enfants jouaient dans le jardin pendant que leurs parents préparaient le dîner.",
    "Le musée présente une exposition consacrée aux peintres impressionnistes du siècle dernier.",
    "Il faut absolument réserver une table si vous voulez manger dans ce restaurant le samedi.",
    "La réunion a été reportée à la semaine prochaine à cause de la grève des transports.",
    "Mon grand-père racontait souvent des histoires sur sa jeunesse à la campagne.",
    "Les chercheurs ont publié une étude sur les effets du changement climatique en montagne.",
    "Après la pluie, les rues de la ville étaient calmes et l'air sentait bon la terre mouillée.",
    "Je me demande pourquoi le train est encore en retard ce matin, c'est vraiment pénible.",
    "Cette boulangerie vend le meilleur pain du quartier, il faut arriver tôt pour en avoir.",
]
GERMAN = [
    "Das kleine Dorf liegt am Ufer des Flusses und ist von Feldern und Wäldern umgeben.",
    "Wir haben den ganzen Abend mit unseren Nachbarn über Politik und Bücher gesprochen.",
    "Sie wollte schon immer Klavier spielen lernen, aber sie hatte nie genug Zeit dafür.",
    "Die Kinder spielten im Garten, während ihre Eltern in der Küche das Abendessen kochten.",
    "Das Museum zeigt eine Ausstellung über die Maler des Impressionismus.",
    "Wenn Sie am Samstag in diesem Restaurant essen möchten, sollten Sie unbedingt reservieren.",
    "Die Besprechung wurde wegen des Streiks bei der Bahn auf nächste Woche verschoben.",
    "Mein Großvater erzählte oft Geschichten aus seiner Jugend auf dem Land.",
    "Die Forscher haben eine Studie über die Folgen des Klimawandels in den Alpen veröffentlicht.",
    "Nach dem Regen waren die Straßen der Stadt ruhig und die Luft roch nach nasser Erde.",
    "Ich frage mich, warum der Zug heute Morgen schon wieder Verspätung hat.",
    "Diese Bäckerei verkauft das beste Brot im ganzen Viertel, man muss früh kommen.",
]


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(shingles(a, n)), set(shingles(b, n))
    return len(sa & sb) / len(sa | sb)


def near_copy(rng: random.Random, text: str, chinese: bool) -> str:
    """Replace ~1.7% of English words (~0.5% of Chinese characters) until the word 5-gram
    Jaccard is 0.85..0.95."""
    for _ in range(20):
        if chinese:
            chars = list(text)
            spots = [i for i, c in enumerate(chars) if "\u4e00" <= c <= "\u9fff"]
            for i in rng.sample(spots, max(1, len(spots) // 200)):
                chars[i] = rng.choice("山水木火土日月云风雨花草")
            copy = "".join(chars)
        else:
            words = text.split(" ")
            for i in rng.sample(range(len(words)), max(1, len(words) // 60)):
                words[i] = rng.choice(EN[rng.choice(["noun", "adj", "verb", "adv"])])
            copy = " ".join(words)
        if 0.85 <= jaccard(text, copy) <= 0.95:
            return copy
    raise AssertionError("could not make a near copy in range")


def exact_copy(rng: random.Random, text: str) -> str:
    """Same normalised text: case, spaces and punctuation vary."""
    variant = rng.choice([text.upper(), text.lower(), "  " + text.replace(" ", "   ") + "\n\n"])
    if rng.random() < 0.5:
        variant = variant.replace(".", " .").replace("，", ",")
    return variant


@dataclass
class Corpus:
    docs: list[Doc]
    exact_of: dict[str, str] = field(default_factory=dict)  # copy id -> original id
    near_of: dict[str, str] = field(default_factory=dict)


def make_dedup_corpus(seed: int = 7, n_en: int = 1700, n_zh: int = 500, n_copies: int = 150) -> Corpus:
    rng = random.Random(seed)
    originals = [Doc(f"en{i}", english_doc(rng)) for i in range(n_en)]
    originals += [Doc(f"zh{i}", chinese_doc(rng)) for i in range(n_zh)]
    rng.shuffle(originals)
    corpus = Corpus(list(originals))
    for kind in ("exact", "near"):
        for k, src_pos in enumerate(rng.sample(range(len(originals) // 2), n_copies)):
            src = originals[src_pos]
            if kind == "exact":
                copy = Doc(f"x{k}-{src.id}", exact_copy(rng, src.text))
                corpus.exact_of[copy.id] = src.id
            else:
                copy = Doc(f"n{k}-{src.id}", near_copy(rng, src.text, src.id.startswith("zh")))
                corpus.near_of[copy.id] = src.id
            # copies always come after their original: the original is the one kept
            pos = rng.randint(corpus.docs.index(src) + 1, len(corpus.docs))
            corpus.docs.insert(pos, copy)
    return corpus


# ---------------------------------------------------------------- PII


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def _group(number: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(number[i : i + size])
        i += size
    return sep.join(out)


def make_card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice(
        [
            ("4", 16, [4, 4, 4, 4]),
            ("53", 16, [4, 4, 4, 4]),
            ("37", 15, [4, 6, 5]),
            ("6011", 16, [4, 4, 4, 4]),
            ("62", 19, [4, 4, 4, 4, 3]),
            ("36", 14, [4, 6, 4]),
        ]
    )
    number = _luhn_complete(prefix, length, rng)
    return rng.choice([number, _group(number, groups, " "), _group(number, groups, "-")])


def make_cn_id(rng: random.Random, want_x: bool = False) -> str:
    while True:
        first17 = (
            rng.choice(["11", "31", "44", "51", "33", "65"])
            + _digits(rng, 4)
            + f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            + _digits(rng, 3)
        )
        check = cn_id_check_char(first17)
        if check == "X" or not want_x:
            return first17 + check


def make_iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        [
            ("DE", _digits(rng, 18)),
            ("GB", "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + _digits(rng, 14)),
            (
                "FR",
                _digits(rng, 10)
                + "".join(rng.choice("0123456789ABCDEFGHJK") for _ in range(11))
                + _digits(rng, 2),
            ),
            ("NL", "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + _digits(rng, 10)),
            ("ES", _digits(rng, 20)),
        ]
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return rng.choice([iban, " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))])


def make_phone(rng: random.Random) -> str:
    d = lambda n: _digits(rng, n)  # noqa: E731
    mobile = f"1{rng.choice('3456789')}{d(9)}"
    return rng.choice(
        [
            f"+1 ({rng.randint(201, 989)}) {d(3)}-{d(4)}",
            f"+1 {rng.randint(201, 989)}-{d(3)}-{d(4)}",
            f"+44 20 {d(4)} {d(4)}",
            f"+49 30 {d(6)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+81 3-{d(4)}-{d(4)}",
            f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}",
            f"+86{mobile}",
            mobile,
            f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
            f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}",
        ]
    )


def make_ip(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return ".".join(str(rng.randint(0, 255)) for _ in range(4))
    if kind == 1:
        return str(ipaddress.IPv6Address(rng.getrandbits(128))).upper()
    if kind == 2:  # compressed: a run of zero groups
        groups = [f"{rng.randint(1, 0xFFFF):x}" for _ in range(8)]
        groups[2:5] = ["0", "0", "0"]
        return str(ipaddress.IPv6Address(":".join(groups)))
    if kind == 3:
        return f"fe80::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"
    return f"::ffff:{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def make_email(rng: random.Random) -> str:
    user = rng.choice(["li.wei", "john_doe", "m.rossi", "zhang3", "anna-k", "ops+alerts"])
    host = rng.choice(["example.com", "mail.example.org", "corp.co.uk", "qq.com", "163.com"])
    email = f"{user}{rng.randint(1, 999)}@{host}"
    return email.upper() if rng.random() < 0.1 else email


MAKERS = {
    "email": make_email,
    "phone": make_phone,
    "ip_address": make_ip,
    "credit_card": make_card,
    "cn_id": make_cn_id,
    "iban": make_iban,
}
EN_FRAMES = [
    "Please contact me at {} if anything changes.",
    "The record lists {} as the value.",
    "Send it to {}, then wait for the reply.",
    "Her details ({}) were copied into the form.",
]
ZH_FRAMES = ["请通过{}联系我。", "登记的信息是{}，请核对。", "他留下了{}这个号码。"]


def make_decoys(rng: random.Random) -> list[str]:
    """Look-alikes that are not PII and must come out unchanged."""
    bad_card = _luhn_complete("4", 16, rng)
    bad_card = bad_card[:-1] + str((int(bad_card[-1]) + rng.randint(1, 9)) % 10)
    good_id = make_cn_id(rng)
    bad_id = good_id[:-1] + next(c for c in "0123456789X" if c != good_id[-1])
    bad_date_id = good_id[:10] + "1399" + good_id[14:17]  # month 13, day 99
    bad_date_id += cn_id_check_char(bad_date_id)
    iban = make_iban(rng).replace(" ", "")
    bad_iban = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
    return [
        bad_card,
        _group(bad_card, [4, 4, 4, 4], " "),
        bad_id,
        bad_date_id,
        bad_iban,
        f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}",
        ".".join(str(rng.randint(0, 9)) for _ in range(5)),  # a version, not an IPv4
        f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        f"{rng.randint(0, 23)}:{rng.randint(10, 59)}:00",
        f"ORD-2023-{_digits(rng, 6)}",
        f"#{_digits(rng, 9)}",
        f"order {rng.randint(2, 9)}{_digits(rng, 12)}",
        f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.1.1",
        "std::vector<int>",
        "ISBN 978-3-16-148410-0",
        f"US$ {rng.randint(1, 99)},{_digits(rng, 3)}.{_digits(rng, 2)}",
        "::1",
        f"+{rng.randint(30, 49)} {rng.randint(10, 99)} {rng.randint(10, 99)}",  # too few digits for E.164
        f"+{rng.randint(2, 9)} points",
    ]


def make_pii_docs(seed: int = 5, n: int = 240) -> list[tuple[Doc, list[tuple[str, str]], list[str]]]:
    """Documents each with 1-4 planted PII items (type, value) and 2 decoys."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        chinese = i % 3 == 0
        base = chinese_doc(rng, (1, 1)) if chinese else english_doc(rng, (1, 1))
        frames = ZH_FRAMES if chinese else EN_FRAMES
        kinds = [list(MAKERS)[i % 6]] + rng.sample(list(MAKERS), rng.randint(0, 3))
        planted = [(kind, MAKERS[kind](rng)) for kind in kinds]
        if i % 6 == 4:
            planted.append(("cn_id", make_cn_id(rng, want_x=True)))
        decoys = rng.sample(make_decoys(rng), 2)
        parts = [rng.choice(frames).format(value) for _, value in planted]
        parts += [rng.choice(frames).format(value) for value in decoys]
        rng.shuffle(parts)
        out.append((Doc(f"pii{i}", (" " if not chinese else "").join([base, *parts])), planted, decoys))
    return out


# ---------------------------------------------------------------- natural text and junk

NATURAL_ZH = [
    "近年来，随着人工智能技术的快速发展，越来越多的企业开始尝试把大模型应用到客服、文档检索和代码生成等场景中。"
    "不过，通用模型往往缺少行业知识，回答专业问题时容易出错。因此，不少公司希望用自己的数据对模型进行微调，"
    "同时又担心数据泄露，所以更倾向于在本地部署整套平台。",
    "今年夏天雨水特别多，村里的稻田有一半被淹了。老王一大早就扛着铁锹去地里排水，一直忙到中午才回家吃饭。"
    "他说，只要接下来两个星期天气转晴，收成应该还能保住七成左右。村委会也在商量，准备从镇上借两台抽水机过来帮忙。",
    "这本书讲述了一个普通家庭在城市化进程中的变迁。作者用朴素的语言记录了父母从农村来到城市打工、"
    "在工地和餐馆之间辗转的经历，也写下了自己在两种生活方式之间的迷茫和成长。读完以后，很多读者都说在书里看到了自己的影子。",
    "研究团队在实验中发现，适当降低学习率并增加训练步数，可以明显减少模型在小数据集上的过拟合现象。"
    "他们还比较了三种不同的数据清洗方法，结果表明去除重复样本对最终效果的影响最大，其次是过滤低质量的网页文本。",
]


def junk_docs(rng: random.Random) -> list[str]:
    def soup() -> str:
        return " ".join(
            "".join(rng.choice("#$%^&*()_+=<>{}[]|~@!?/\\") for _ in range(rng.randint(2, 8)))
            for _ in range(rng.randint(60, 200))
        )

    def repeated_lines() -> str:
        line = _fill(rng, rng.choice(EN_TEMPLATES), EN)
        other = [_fill(rng, rng.choice(EN_TEMPLATES), EN) for _ in range(3)]
        return "\n".join(other + [line] * rng.randint(8, 20))

    def repeated_zh() -> str:
        line = _fill(rng, rng.choice(ZH_TEMPLATES), ZH)
        return "\n".join([line] * rng.randint(8, 20) + [chinese_doc(rng, (1, 1))])

    def stuffed() -> str:
        keys = rng.sample(["cheap", "shoes", "buy", "online", "best", "deal", "free", "shipping", "sale"], 4)
        return " ".join(rng.choice(keys) for _ in range(rng.randint(80, 200)))

    def stuffed_zh() -> str:
        keys = rng.sample(["便宜", "手机", "正品", "包邮", "特价", "促销", "下载", "免费"], 3)
        return "，".join(rng.choice(keys) + rng.choice(keys) for _ in range(rng.randint(60, 120)))

    def short() -> str:
        return rng.choice(
            ["Click here.", "Home | About | Contact", "Page 2 of 7", "登录 注册", "Read more..."]
        )

    def bullets() -> str:
        return "\n".join(
            f"- {rng.choice(EN['noun'])} {rng.choice(EN['adj'])}..." for _ in range(rng.randint(20, 40))
        )

    def ngram_spam() -> str:
        phrase = _fill(rng, rng.choice(EN_TEMPLATES), EN).rstrip(".")
        return " ".join([phrase] * rng.randint(6, 12))

    makers = [soup, repeated_lines, repeated_zh, stuffed, stuffed_zh, short, bullets, ngram_spam]
    return [makers[i % len(makers)]() for i in range(240)]


# ---------------------------------------------------------------- real prose from this machine


_PROSE_TOKEN = re.compile(r"^[(\"'“‘]*[A-Za-z][A-Za-z'’-]*[.,;:!?)\"'”’]*$")


def _is_prose(piece: str) -> bool:
    """Running text, not a file list, a table, a code example or a source-code comment block
    (lines behind '#' or ' * ' markers, which the bullet and symbol rules rightly judge as
    markup): at least 85% of its tokens are words (letters, with punctuation around them)."""
    tokens = piece.split()
    if ">>>" in piece or piece.startswith(("Files:", "Copyright:", "Comment:")):
        return False
    lines = piece.splitlines()
    if sum(1 for line in lines if line.lstrip().startswith(("#", "*", "//"))) > len(lines) // 2:
        return False
    return sum(1 for t in tokens if _PROSE_TOKEN.match(t)) >= 0.85 * len(tokens)


def _paragraphs(text: str, low: int = 60, high: int = 170) -> list[str]:
    """Prose paragraphs (blank-line separated) of low..high words, line breaks as written."""
    out = []
    for piece in re.split(r"\n\s*\n", text):
        piece = "\n".join(line.rstrip() for line in piece.strip("\n").splitlines())
        if low <= len(piece.split()) <= high and _is_prose(piece):
            out.append(piece)
    return out


def _docstrings() -> list[str]:
    """Docstrings of the standard library's public modules, classes and functions."""
    import importlib
    import inspect
    import pkgutil
    import sys
    import warnings

    skip = ("test", "idlelib", "tkinter", "turtle", "antigravity", "this", "lib2to3", "ensurepip", "pydoc_data")
    names = sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(sys.base_prefix)
                   and not m.name.startswith(("_", *skip)) and "site-packages" not in m.module_finder.path)
    docs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - optional modules that do not import here
                continue
            objects = [module] + [v for k, v in sorted(vars(module).items()) if not k.startswith("_")
                                  and (inspect.isclass(v) or inspect.isfunction(v))
                                  and getattr(v, "__module__", None) == name]
            docs += [d for d in (inspect.getdoc(o) for o in objects) if d]
    return docs


def real_prose(limit: int | None = None) -> list[str]:
    """Short documentation paragraphs (60-170 words) shipped on this machine: licence texts,
    package copyright files and standard-library docstrings; each distinct text once, in a
    fixed order. Clean text that a cleaning recipe must keep."""
    from pathlib import Path

    texts = [p.read_text(errors="replace") for p in sorted(Path("/usr/share/common-licenses").glob("*"))
             if p.is_file()]
    texts += [p.read_text(errors="replace") for p in sorted(Path("/usr/share/doc").glob("*/copyright"))]
    texts += _docstrings()
    seen, out = set(), []
    for text in texts:
        for para in _paragraphs(text):
            key = " ".join(para.split()).lower()
            if key not in seen:
                seen.add(key)
                out.append(para)
    return out[:limit]


def gibberish_doc(rng: random.Random, weighted: bool = False) -> str:
    """Word-shaped gibberish: 60-170 'words' of 2-10 random letters, with capitals and
    punctuation where prose has them. `weighted`: letters drawn with English frequencies."""
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
               1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07] if weighted else None
    words = []
    for i in range(rng.randint(60, 170)):
        word = "".join(rng.choices(letters, weights, k=rng.randint(2, 10)))
        if i == 0 or words[-1].endswith("."):
            word = word.capitalize()
        words.append(word + ("." if rng.random() < 0.08 else "," if rng.random() < 0.05 else ""))
    return " ".join(words)
