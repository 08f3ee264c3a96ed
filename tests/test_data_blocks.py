"""The cleaning blocks, measured on a generated corpus with planted duplicates, PII and junk.

The corpus (tests/data_corpus.py) is seeded, so every run sees the same documents: English and
Chinese documents, exact copies with case/space/punctuation changes, near copies with a few
words replaced, PII of every type in several formats next to look-alikes that must survive,
and junk that the quality rules must catch. Each block is scored by precision and recall
against what was planted.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from data_corpus import (
    FRENCH,
    GERMAN,
    MAKERS,
    NATURAL_ZH,
    Corpus,
    chinese_doc,
    english_doc,
    jaccard,
    junk_docs,
    make_dedup_corpus,
    make_pii_docs,
    near_copy,
)

from rixin.data.blocks import Doc, apply_blocks, registered
from rixin.data.blocks.language import LANGUAGE_CODES, LanguageConfig, LanguageFilter, model_languages
from rixin.data.blocks.normalize import Normalize, NormalizeConfig
from rixin.data.blocks.pii import PiiRedactor
from rixin.data.blocks.quality import QualityFilter
from rixin.data.blocks.words import WordList, WordsConfig
from rixin.data.dedup import (
    exact_duplicates,
    lsh_bands,
    lsh_params,
    minhash_signature,
    near_duplicate_groups,
    normalized_hash,
)
from rixin.data.pii import redact
from rixin.data.recipe import (
    Recipe,
    build_blocks,
    packaged_recipe,
    packaged_recipes,
    recipe_from_yaml,
    parse_recipe,
)
from rixin.data.report import Report
from rixin.errors import InvalidRequest


@pytest.fixture(scope="module")
def dedup_corpus() -> Corpus:
    return make_dedup_corpus()


def precision_recall(predicted: set, truth: set) -> tuple[float, float]:
    hits = len(predicted & truth)
    return hits / max(len(predicted), 1), hits / max(len(truth), 1)


# ---------------------------------------------------------------- deduplication


def test_exact_dedup_precision_and_recall_are_one(dedup_corpus: Corpus) -> None:
    docs = dedup_corpus.docs
    removed = exact_duplicates([d.id for d in docs], [normalized_hash(d.text) for d in docs])
    precision, recall = precision_recall(set(removed), set(dedup_corpus.exact_of))
    assert (precision, recall) == (1.0, 1.0)
    assert removed == dedup_corpus.exact_of  # each copy points at its original, the first seen


def test_normalized_hash_ignores_case_space_and_punctuation_only() -> None:
    base = "The Bridge near the river, repaired in 2023."
    assert normalized_hash(base) == normalized_hash("  the BRIDGE near   the river repaired in 2023 ")
    assert normalized_hash(base) == normalized_hash("Ｔｈｅ Bridge near the river, repaired in 2023.")
    assert normalized_hash(base) != normalized_hash("The Bridge near the river, repaired in 2024.")
    assert re.fullmatch(r"[0-9a-f]{32}", normalized_hash(base))


def test_near_dedup_precision_and_recall(dedup_corpus: Corpus) -> None:
    # The orchestrator's order: exact duplicates out first, then near duplicates.
    exact = set(dedup_corpus.exact_of)
    docs = [d for d in dedup_corpus.docs if d.id not in exact]
    sigs = np.stack([minhash_signature(d.text, 128, 5, seed=42) for d in docs])
    assert sigs.shape == (len(docs), 128) and sigs.dtype == np.uint32
    removed = near_duplicate_groups([d.id for d in docs], sigs, threshold=0.8, texts=[d.text for d in docs])
    precision, recall = precision_recall(set(removed), set(dedup_corpus.near_of))
    print(f"near dedup: precision {precision:.4f} recall {recall:.4f} on {len(docs)} docs")
    assert recall >= 0.95 and precision >= 0.95
    kept_right = sum(removed[c] == o for c, o in dedup_corpus.near_of.items() if c in removed)
    assert kept_right == len(set(removed) & set(dedup_corpus.near_of))  # the original is kept
    # controls: distinct documents are far below the threshold
    rng = random.Random(3)
    controls = [jaccard(rng.choice(docs).text, rng.choice(docs).text) for _ in range(200)]
    assert max(controls) < 0.5


def test_minhash_is_deterministic_and_estimates_jaccard() -> None:
    rng = random.Random(11)
    a = english_doc(rng)
    b = near_copy(rng, a, chinese=False)
    sa, sb = minhash_signature(a, 256), minhash_signature(b, 256)
    assert np.array_equal(sa, minhash_signature(a, 256))
    assert not np.array_equal(sa, minhash_signature(a, 256, seed=1))
    assert abs(float((sa == sb).mean()) - jaccard(a, b)) < 0.1
    assert (minhash_signature("", 64) == np.uint32(0xFFFFFFFF)).all()
    ids = ["a", "b", "c", "d"]
    sigs = np.stack([sa, sb, minhash_signature("", 256), minhash_signature("", 256)])
    assert near_duplicate_groups(ids, sigs, 0.8) == {"b": "a"}  # empty texts never match
    assert near_duplicate_groups(ids, sigs, 0.8, texts=[a, b, "", ""]) == {"b": "a"}


def test_lsh_params_and_band_keys() -> None:
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128
    p = lambda s: 1 - (1 - s**rows) ** bands  # noqa: E731  P(candidate | similarity s)
    assert p(0.8) >= 0.999 and p(0.3) < 0.1  # at the threshold: a candidate almost surely
    sig = minhash_signature("a document about bridges and rivers", 128)
    keys = lsh_bands(sig, bands, rows)
    assert len(keys) == bands and len(set(keys)) == bands and all(len(k) == 16 for k in keys)
    assert keys == lsh_bands(sig.copy(), bands, rows)


@pytest.fixture(scope="module")
def pii_docs() -> list[tuple[Doc, list[tuple[str, str]], list[str]]]:
    """240 documents, each with 1-4 planted PII items (type, value) and 2 decoys."""
    return make_pii_docs()


# ---------------------------------------------------------------- PII


def test_every_planted_pii_item_is_redacted_and_counted(pii_docs) -> None:
    redactor = PiiRedactor()
    expected, found = {k: 0 for k in MAKERS}, {k: 0 for k in MAKERS}
    for doc, planted, decoys in pii_docs:
        verdict = redactor(doc)
        assert verdict.keep
        for kind, value in planted:
            expected[kind] += 1
            assert value not in verdict.text, f"{kind} not redacted in {doc.id}"
        for decoy in decoys:
            assert decoy in verdict.text, f"decoy {decoy!r} was redacted in {doc.id}"
        per_doc = {k: sum(1 for kind, _ in planted if kind == k) for k in MAKERS}
        assert {k: verdict.counts.get(k, 0) for k in MAKERS} == per_doc, doc.id
        for kind, n in verdict.counts.items():
            found[kind] += n
            assert verdict.text.count(f"<{kind.upper()}>") == n
    assert found == expected and min(expected.values()) >= 40
    print("planted and redacted per type:", expected)


def test_no_redaction_in_clean_control_set() -> None:
    rng = random.Random(9)
    numbers = [
        "The meeting on 2024-03-15 at 14:30 approved budget version 2.1.0.",
        "Order ORD-2023-004512 shipped in 3 boxes weighing 12.5 kg.",
        "Revenue grew 7.5% to US$ 1,234,567.89 in Q3 2023.",
        "会议于2023年10月1日召开，共有356人参加，预算为1200万元。",
        "Please read chapter 12, pages 101-145, before 9:00 tomorrow.",
    ]
    controls = [english_doc(rng) for _ in range(160)] + [chinese_doc(rng) for _ in range(60)]
    controls = [doc + "\n\n" + rng.choice(numbers) for doc in controls]
    total = sum(sum(redact(text)[1].values()) for text in controls)
    assert len(controls) >= 200 and total == 0


def test_pii_types_can_be_limited() -> None:
    text = "mail a@example.com or call +44 20 7946 0958"
    verdict = PiiRedactor(Recipe(pii={"types": ["email"]}).pii)(Doc("d", text))
    assert verdict.text == "mail <EMAIL> or call +44 20 7946 0958" and verdict.counts == {"email": 1}


# ---------------------------------------------------------------- quality


def test_quality_filter_removes_junk_and_keeps_clean_english_and_chinese() -> None:
    rng = random.Random(13)
    quality = QualityFilter()
    junk = junk_docs(rng)
    junk_reasons = [quality(Doc(f"j{i}", t)).reason for i, t in enumerate(junk)]
    junk_recall = sum(r is not None for r in junk_reasons) / len(junk)
    clean = {
        "en": [english_doc(rng) for _ in range(300)],
        "zh": [chinese_doc(rng) for _ in range(200)] + NATURAL_ZH,
    }
    for lang, docs in clean.items():
        reasons = [quality(Doc(f"{lang}{i}", t)).reason for i, t in enumerate(docs)]
        dropped = [r for r in reasons if r]
        print(f"quality {lang}: dropped {len(dropped)}/{len(docs)} clean {sorted(set(dropped))}")
        assert len(dropped) <= 0.05 * len(docs)
        assert all(r is None for r in reasons[-len(NATURAL_ZH):]) if lang == "zh" else True
    print(f"quality junk recall {junk_recall:.3f}; reasons {sorted({r for r in junk_reasons if r})}")
    assert junk_recall >= 0.9


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Too short to be a document.", "too_short"),
        ("# " * 30 + " ".join(["word"] * 60), "symbol_ratio"),
        (" ".join(["a b c d"] * 30), "mean_word_length"),
        ("\n".join([english_doc(random.Random(2), (1, 1))] + ["One line said again and again."] * 4),
         "dup_line_fraction"),
        (" ".join(["cheap", "shoes", "buy", "now"] * 20), "unique_words"),
        (" ".join(["cheap shoes"] * 40) + " " + english_doc(random.Random(1), (1, 1)), "top_2gram"),
    ],
)
def test_quality_reason_codes(text: str, reason: str) -> None:
    verdict = QualityFilter()(Doc("q", text))
    assert (verdict.keep, verdict.reason) == (False, reason)
    assert verdict.text == text


def test_quality_rules_can_be_switched_off() -> None:
    cfg = Recipe(quality={"min_words": None, "min_mean_word_length": None}).quality
    assert QualityFilter(cfg)(Doc("q", "Short but fine sentence here.")).keep


# ---------------------------------------------------------------- language, word lists, normalize


def test_language_identification_en_zh_fr_de() -> None:
    rng = random.Random(17)
    samples = {
        "en": [english_doc(rng, (1, 1)) for _ in range(40)],
        "zh": [chinese_doc(rng, (1, 1)) for _ in range(40)] + NATURAL_ZH,
        "fr": [" ".join(rng.sample(FRENCH, rng.randint(1, 3))) for _ in range(40)],
        "de": [" ".join(rng.sample(GERMAN, rng.randint(1, 3))) for _ in range(40)],
    }
    detect = LanguageFilter()
    for lang, texts in samples.items():
        got = [detect(Doc("l", t)).meta["language"] for t in texts]
        accuracy = sum(g == lang for g in got) / len(got)
        print(f"language {lang}: accuracy {accuracy:.3f}")
        assert accuracy >= 0.95
    only = LanguageFilter(LanguageConfig(allow=["en", "zh"]))
    assert only(Doc("l", samples["en"][0])).keep and only(Doc("l", NATURAL_ZH[0])).keep
    verdict = only(Doc("l", FRENCH[0]))
    assert (verdict.keep, verdict.reason, verdict.meta["language"]) == (False, "language:fr", "fr")
    unsure = LanguageFilter(LanguageConfig(allow=["en"], min_confidence=0.999999))
    assert unsure(Doc("l", "ok")).reason == "language:und"


def test_language_codes_match_the_bundled_model() -> None:
    assert set(model_languages()) == LANGUAGE_CODES


def test_word_list_block_and_allow() -> None:
    words = WordList(WordsConfig(block=["casino", "Free Money", "赌博"], allow=["rixin", "数据"]))
    cases = {
        "Rixin hosts a CASINO night.": "blocked_word",
        "rixin: get FREE   money".replace("   ", " "): "blocked_word",
        "rixin 平台禁止赌博广告。": "blocked_word",
        "他在casino工作，也用rixin。": "blocked_word",
        "Casinos and rixin": None,  # word boundary: casinos is another word
        "The rixin platform cleans data.": None,
        "我们的数据平台": None,  # CJK allow term matches without spaces
        "Ｒｉｘｉｎ full width": None,  # NFKC folds full-width letters
        "nothing allowed here": "no_allowed_word",
        "rixinx is not rixin-free": None,  # 'rixin' stands alone after the hyphen
    }
    for text, reason in cases.items():
        assert words(Doc("w", text)).reason == reason, text
    assert WordList()(Doc("w", "anything")).keep


def test_normalize_repairs_unicode_and_whitespace() -> None:
    norm = Normalize()
    raw = (
        "The caf\u0065\u0301 doesnâ€™t open.\r\nTabs\t\tand   spaces \u200bhere  \n\n\n\n\n"
        "    indented  code\x00 line\n你好，世界！（全角标点保留）\u3000\u3000ok\x07"
    )
    verdict = norm(Doc("n", raw))
    assert verdict.keep
    assert verdict.text == (
        "The café doesn’t open.\nTabs and spaces here\n\n"
        "    indented code line\n你好，世界！（全角标点保留） ok"
    )
    assert norm(Doc("n", " \n\u200b\x00\t ")).reason == "empty"
    assert Normalize(NormalizeConfig(form="NFKC"))(Doc("n", "ＡＢＣ，x²")).text == "ABC,x2"


# ---------------------------------------------------------------- recipes


def test_default_recipe_loads_with_every_step() -> None:
    assert packaged_recipes() == ["default", "short"]
    recipe = packaged_recipe("default")
    assert recipe.name == "default"
    assert recipe.steps == ["normalize", "quality", "language", "words", "pii", "exact_dedup", "near_dedup"]
    assert recipe.near_dedup.threshold == 0.8 and recipe.runs_exact_dedup and recipe.runs_near_dedup
    assert recipe.quality.max_duplicate_ngram_char_fraction[10] == 0.10
    assert [b.name for b in build_blocks(recipe)] == ["normalize", "quality", "language", "words", "pii"]
    # the packaged file spells out the defaults: it validates to the same thing as no file at all
    named = {"name", "description"}
    assert recipe.model_dump(exclude=named) == Recipe().model_dump(exclude=named)
    # every block is declared in its own module, next to its config, and found by the registry
    specs = registered()
    assert list(specs) == ["normalize", "quality", "language", "words", "pii"]
    for name, spec in specs.items():
        assert spec.config.__module__ == spec.build.__module__ == f"rixin.data.blocks.{name}"
        assert Recipe.model_fields[name].annotation is spec.config
        for setting in spec.reasons.values():  # a setting the report names is a real one
            section, _, field = setting.partition(".")
            assert section.split(" ")[0] == name and field.split(" ")[0] in ("", *spec.config.model_fields)


def _error(data: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_recipe(data)
    return info.value


def test_unknown_keys_are_errors_naming_the_path_and_allowed_keys() -> None:
    err = _error({"quality": {"min_word": 10}})
    assert err.param == "quality.min_word"
    assert "unknown key 'quality.min_word'" in err.message and "min_words" in err.message
    err = _error({"near_dedup": {"threshold": 0.9, "bands": 4}})
    assert err.param == "near_dedup.bands" and "num_perm" in err.message
    err = _error({"stepz": ["normalize"]})
    assert err.param == "stepz" and "steps" in err.message and "top level" in err.message


def test_wrong_types_and_values_are_clear_errors() -> None:
    err = _error({"near_dedup": {"threshold": "high"}})
    assert err.param == "near_dedup.threshold" and "'high'" in err.message and "number" in err.message
    assert _error({"near_dedup": {"threshold": 1.5}}).param == "near_dedup.threshold"
    assert _error({"steps": ["normalize", "dedupe"]}).param == "steps.1"
    assert "last" in _error({"steps": ["exact_dedup", "quality"]}).message
    err = _error({"language": {"allow": ["english"]}})
    assert err.param == "language.allow" and "english" in err.message
    assert _error(["not", "a", "mapping"]).param == "recipe"
    with pytest.raises(InvalidRequest, match="not valid YAML"):
        recipe_from_yaml("quality:\n  min_words: [1\n")
    with pytest.raises(InvalidRequest, match="aliases"):  # a "billion laughs" document is refused unread
        recipe_from_yaml("a: &a [x, x]\nb: &b [*a, *a]\nsteps: *b\n")
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        recipe_from_yaml("[" * 5000 + "]" * 5000)
    assert packaged_recipe("no-such-recipe") is None and packaged_recipe("../recipes/default") is None


def test_recipe_yaml_round_trip() -> None:
    recipe = recipe_from_yaml(
        "name: mine\nsteps: [normalize, pii]\npii: {types: [email, iban]}\nwords: {block: [spam]}\n"
    )
    assert recipe.steps == ["normalize", "pii"] and not recipe.runs_near_dedup
    blocks = build_blocks(recipe)
    verdict = apply_blocks(blocks, Doc("r", "Write  to a@b.org\x00 about spam"))
    assert verdict.keep and verdict.text == "Write to <EMAIL> about spam" and verdict.counts == {"email": 1}


# ---------------------------------------------------------------- the whole pipeline and its report


def test_pipeline_report_counts_reasons_and_never_shows_raw_pii(dedup_corpus: Corpus, pii_docs) -> None:
    rng = random.Random(21)
    recipe = parse_recipe({"language": {"allow": ["en", "zh"]}, "words": {"block": ["casino"]}})
    blocks = build_blocks(recipe)
    junk = [Doc(f"junk{i}", t) for i, t in enumerate(junk_docs(rng)[:40])]
    french = [Doc(f"fr{i}", " ".join(FRENCH)) for i in range(5)]
    casino = [Doc(f"casino{i}", english_doc(rng) + " The casino opened.") for i in range(5)]
    pii = [doc for doc, _, _ in pii_docs[:60]]
    # a dropped document full of PII: its sample in the report must be redacted
    leaky = Doc("leaky", "Call +44 20 7946 0958 or write to leak@example.com now.")
    docs = [leaky] + dedup_corpus.docs[:600] + junk + french + casino + pii

    report = Report(samples_per_reason=recipe.samples_per_reason)
    survivors = []
    for doc in docs:
        verdict = apply_blocks(blocks, doc)
        report.add(doc, verdict)
        if verdict.keep:
            survivors.append(Doc(doc.id, verdict.text))
    kept = {d.id for d in survivors}
    exact = exact_duplicates([d.id for d in survivors], [normalized_hash(d.text) for d in survivors])
    for doc in survivors:
        if doc.id in exact:
            report.add_removed(doc.id, "exact_duplicate", doc.text)
    rest = [d for d in survivors if d.id not in exact]
    nd = recipe.near_dedup
    sigs = np.stack([minhash_signature(d.text, nd.num_perm, nd.ngram, nd.seed) for d in rest])
    near = near_duplicate_groups([d.id for d in rest], sigs, nd.threshold, texts=[d.text for d in rest])
    for doc in rest:
        if doc.id in near:
            report.add_removed(doc.id, "near_duplicate", doc.text)

    out = report.to_dict()
    assert out["documents_in"] == len(docs)
    assert out["documents_out"] == len(rest) - len(near)
    assert out["removed"]["language:fr"] == 5 and out["removed"]["blocked_word"] == 5
    assert out["removed"]["too_short"] >= 1 + 5  # 'leaky' and the short junk
    planted_exact = {c for c in dedup_corpus.exact_of if c in {d.id for d in docs}}
    assert out["removed"]["exact_duplicate"] == len(planted_exact)
    assert sum(out["removed"].values()) == len(docs) - out["documents_out"]
    # redactions are counted in the documents that passed the per-document blocks
    planted = [kind for doc, items, _ in pii_docs[:60] if doc.id in kept for kind, _ in items]
    assert out["redactions"] == {k: planted.count(k) for k in MAKERS}
    assert sum(out["redactions"].values()) > 100
    samples = out["samples"]
    assert all(len(s) <= 5 for s in samples.values()) and set(samples) == set(out["removed"])
    shown = " ".join(s["text"] for group in samples.values() for s in group)
    assert samples["too_short"][0] == {"id": "leaky", "text": "Call <PHONE> or write to <EMAIL> now."}
    assert "leak@example.com" not in shown and "7946 0958" not in shown
    assert all(len(s["text"]) <= 300 for group in samples.values() for s in group)
    # shards merge to the same totals
    half = Report.from_dict(out).merge(Report.from_dict(out))
    assert half.docs_in == 2 * len(docs) and half.removed["language:fr"] == 10
    assert all(len(s) <= 5 for s in half.samples.values())


# ---------------------------------------------------------------- real short prose and gibberish


@pytest.fixture(scope="module")
def prose() -> list[str]:
    from data_corpus import real_prose

    return real_prose()


def test_real_short_prose_is_kept(prose) -> None:
    """Licence, copyright-file and docstring paragraphs of 60-170 words: with Gopher's fixed
    n-gram limits 5-11% were dropped (one clause said twice); the limits now scale with length."""
    quality = QualityFilter()
    reasons = [quality(Doc(str(i), p)).reason for i, p in enumerate(prose)]
    dropped = [r for r in reasons if r]
    print(f"real prose: {len(prose)} paragraphs, dropped {len(dropped)}: {sorted(set(dropped))}")
    assert len(prose) >= 800 and len(dropped) <= 0.005 * len(prose)


def test_word_shaped_gibberish_is_removed_and_other_text_is_not(prose) -> None:
    from data_corpus import gibberish_doc

    rng = random.Random(17)
    quality = QualityFilter()
    gibberish = [gibberish_doc(rng) for _ in range(400)]
    removed = [quality(Doc(f"g{i}", t)).reason for i, t in enumerate(gibberish)]
    share = sum(r == "gibberish_words" for r in removed) / len(gibberish)
    print(f"gibberish removed as gibberish_words: {share:.3f}")
    assert share >= 0.95
    others = prose + [english_doc(rng) for _ in range(100)] + [chinese_doc(rng) for _ in range(100)]
    others += NATURAL_ZH + [" ".join(FRENCH), " ".join(GERMAN)]
    assert sum(quality(Doc("o", t)).reason == "gibberish_words" for t in others) <= 0.005 * len(others)


def test_every_text_field_of_every_record_format_is_redacted() -> None:
    """Chat (string and content-part) messages, prompt/completion and both sides of a
    preference pair: PII in any of them is redacted, not only in 'text'."""
    from rixin.data.clean import clean_record
    from rixin.data.recipe import text_transforms

    recipe = parse_recipe({"steps": ["normalize", "pii"]})
    blocks = build_blocks(recipe)
    transforms = text_transforms(recipe, blocks)
    assert [b.name for b in transforms] == ["normalize", "pii"]
    mail = "a.b@example.com"
    records = [
        {"id": "c", "messages": [{"role": "user", "content": [{"type": "text", "text": f"mail {mail}"}]},
                                 {"role": "assistant", "content": f"noted {mail}"}]},
        {"id": "p", "prompt": f"to {mail}", "completion": f"from {mail}"},
        {"id": "d", "input": {"messages": [{"role": "user", "content": f"is {mail} right?"}]},
         "preferred_output": [{"role": "assistant", "content": f"yes, {mail}"}],
         "non_preferred_output": [{"role": "assistant", "content": f"no, {mail}"}]},
    ]
    for record in records:
        kept, verdict = clean_record(blocks, transforms, record)
        assert mail not in str(kept) and verdict.counts["email"] >= 2, kept
