"""PII in the locales we claim (en_US, zh_CN) is redacted in every format the Faker library
writes it, and look-alikes (order numbers, versions, dates, times, ISBNs, prices, IP-like
version numbers) come out unchanged. Seeded, so every run sees the same corpus.

Finding (issue 18): US phone numbers in national formats — (797) 624-4944, 797-624-4944,
580.622.5179 — were redacted 0 of 56 times."""

from __future__ import annotations

import random
import re

from faker import Faker
from faker.providers.phone_number import en_US as faker_us
from faker.providers.phone_number import zh_CN as faker_cn

from rixin.data.pii import redact

PER_FORMAT = 40
# Formats people write that Faker does not emit, in both locales (the examples too).
EXTRA_US = ["(797) 624-4944", "797-624-4944", "580.622.5179", "797 624 4944", "+1 (797) 624-4944",
            "1-797-624-4944", "+1 797 624 4944", "1 (797) 624-4944"]
CN_LANDLINES = ["010-12345678", "0755-1234567", "021-87654321", "(0755) 8888 1234", "0571 8765 4321",
                "(010)62345678", "+86 10 6234 5678", "+86-755-12345678"]
FRAMES_EN = ["Call me at {}.", "Phone: {}", "my number is {} if you need it", "({}) after 5pm", "Tel {}, ask for Ann."]
FRAMES_ZH = ["请拨打{}联系我。", "电话：{}", "他的号码是{}，白天可以打。", "联系电话{}"]


def us_phones() -> list[str]:
    """PER_FORMAT numbers for every format of Faker's en_US provider, from fixed seeds."""
    fake = Faker("en_US")
    out = []
    for k, fmt in enumerate(faker_us.Provider.formats):
        fake.seed_instance(1000 + k)
        out += [fake.numerify(fmt) for _ in range(PER_FORMAT)]
    fake.seed_instance(7)
    return out + [fake.phone_number() for _ in range(400)] + EXTRA_US


def cn_phones() -> list[str]:
    fake = Faker("zh_CN")
    out = []
    for k, fmt in enumerate(faker_cn.Provider.formats):
        fake.seed_instance(2000 + k)
        out += [fake.numerify(fmt) for _ in range(5)]
    fake.seed_instance(8)
    return out + [fake.phone_number() for _ in range(400)] + CN_LANDLINES


def decoys() -> list[str]:
    fake_us, fake_cn, rng = Faker("en_US"), Faker("zh_CN"), random.Random(5)
    fake_us.seed_instance(3)
    fake_cn.seed_instance(4)
    out = []
    for _ in range(60):
        day = fake_us.date_object()
        out += [
            f"ORD-{day.year}-{rng.randint(0, 999999):06d}", f"order #{rng.randint(10**9, 10**10 - 1)}",
            f"Order {rng.randint(2 * 10**9, 10**10 - 1)}", f"invoice no. {rng.randint(2 * 10**9, 10**10 - 1)}",
            f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",          # versions
            f"v{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
            f"{rng.randint(1, 12)}.0.{rng.randint(10000, 22631)}.{rng.randint(1, 4000)}",  # IP-like
            day.isoformat(), day.strftime("%Y.%m.%d"), day.strftime("%Y/%m/%d"), day.strftime("%m/%d/%Y"),
            fake_us.time(), f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            f"ISBN {fake_us.isbn13()}", f"ISBN {fake_us.isbn10()}", fake_us.pricetag(),
            f"US$ {rng.randint(1, 999)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}",
            fake_cn.date(pattern="%Y年%m月%d日"), f"¥{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}",
            f"{rng.uniform(0, 1000):.8f}", f"pages {rng.randint(1, 400)}-{rng.randint(401, 999)}",
        ]
    return out


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _redacted(values: list[str], frames: list[str], joiner: str) -> dict[str, int]:
    """Redact each value inside a sentence next to decoys; count misses per Faker format."""
    rng, pool, missed = random.Random(11), decoys(), {}
    for value in values:
        pair = rng.sample(pool, 2)
        text = joiner.join([rng.choice(frames).format(value), f"Ref {pair[0]}", f"see {pair[1]}"])
        out, counts = redact(text)
        shape = re.sub(r"\d", "#", value)
        if value in out or _digits(value)[-7:] in _digits(out) or counts.get("phone") != 1:
            missed[shape] = missed.get(shape, 0) + 1
        assert pair[0] in out and pair[1] in out, f"decoy changed: {pair} -> {out!r}"
    return missed


def test_every_faker_phone_format_is_redacted_en_us() -> None:
    phones = us_phones()
    shapes = {re.sub(r"\d", "#", p) for p in phones}
    missed = _redacted(phones, FRAMES_EN, " ")
    print(f"en_US: {len(phones)} numbers in {len(shapes)} shapes "
          f"({len(faker_us.Provider.formats)} Faker formats), missed {sum(missed.values())}: {missed}")
    assert missed == {}


def test_every_faker_phone_format_is_redacted_zh_cn() -> None:
    phones = cn_phones()
    missed = _redacted(phones, FRAMES_ZH, "，")
    print(f"zh_CN: {len(phones)} numbers ({len(faker_cn.Provider.formats)} Faker mobile prefixes + "
          f"{len(CN_LANDLINES)} landline formats), missed {sum(missed.values())}: {missed}")
    assert missed == {}


def test_no_decoy_is_touched() -> None:
    pool = decoys()
    touched = [d for d in pool if redact(f"Ref {d} here.")[0] != f"Ref {d} here."]
    print(f"decoys: {len(pool)}, touched {len(touched)}")
    assert len(pool) >= 1000 and touched == []
