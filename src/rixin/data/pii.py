"""PII detection and redaction: find personal data, replace it with a typed placeholder, count
it. The cleaning block built on it is blocks/pii.py; request logs use `redact` directly.

Every numeric type is validated before it is redacted, so that look-alikes survive: credit
cards pass the Luhn check and a card network's prefix and length; Chinese resident IDs pass
the ISO 7064 MOD 11-2 checksum, a province code and a real birth date; IBANs pass their
country's length and the mod-97 check; IP addresses parse with the ipaddress module.
Matched values are never logged and never leave this module except as placeholders.

Boundaries are ASCII letters and digits, not `\\w`: in Chinese text a phone number or e-mail
address sits directly next to CJK characters ("电话13800138000"), and those count as boundaries.

Detectors run in this order, each on the output of the previous one (a placeholder has no
digits, so a later detector cannot match inside an earlier one's find): email, IBAN, CN ID,
credit card, phone (international E.164, US national, Chinese mobile and landline), IPv6, IPv4.

Phones in national formats are the locales we claim (en_US, zh_CN): US numbers as people
write them ((797) 624-4944, 797-624-4944, 580.622.5179, 1-797-624-4944, a bare 7976244944
unless it is labelled an order, invoice, ticket... number) and Chinese landlines
(010-12345678, 0755-1234567). Every format the Faker library emits for those locales is
redacted (tests/security/test_sec_data_pii.py) while dates, versions, ISBNs, prices, times
and order numbers stay: a national number is matched only with an area code and exchange
that start with 2-9 and never right after '-', '.', '/', a digit or a digit and a space
(the groups of a longer number).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

PiiType = Literal["email", "phone", "ip_address", "credit_card", "cn_id", "iban"]
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "ip_address", "credit_card", "cn_id", "iban")

PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "ip_address": "<IP_ADDRESS>",
    "credit_card": "<CREDIT_CARD>",
    "cn_id": "<CN_ID>",
    "iban": "<IBAN>",
}

_A = "0-9A-Za-z"  # boundary characters: ASCII letters and digits (CJK neighbours are fine)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_network_ok(d: str) -> bool:
    """True when prefix and length fit a card network (Visa, Mastercard, Amex, Diners,
    Discover, UnionPay, JCB). This rejects most Luhn-valid order and tracking numbers. Only
    the lengths cards are issued in are accepted: 13-digit Visa numbers are long retired, and
    17/18 digits, allowed by some networks but unused, is the length of a Chinese ID."""
    n, p2, p3, p4 = len(d), int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == "4":
        return n in (16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p2 in (36, 38) or 300 <= p3 <= 305:
        return n in (14, 16)
    if p2 in (62, 65) or p4 == 6011 or 644 <= p3 <= 649 or 3528 <= p4 <= 3589:
        return n in (16, 19)
    return False


def _card_ok(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    return _card_network_ok(digits) and luhn_ok(digits)


_CN_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83 91".split()
)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of an 18-character resident ID."""
    total = sum(int(c) * w for c, w in zip(first17, _CN_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def cn_id_ok(value: str) -> bool:
    value = value.upper()
    if value[:2] not in _CN_PROVINCES or cn_id_check_char(value[:17]) != value[17]:
        return False
    try:
        born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= born <= datetime.date.today()


# IBAN lengths per country (SWIFT IBAN registry); other country codes are not redacted.
_IBAN_LENGTHS = {
    **dict.fromkeys("NO".split(), 15),
    **dict.fromkeys("BE".split(), 16),
    **dict.fromkeys("DK FI FO GL NL".split(), 18),
    **dict.fromkeys("MK SI".split(), 19),
    **dict.fromkeys("AT BA EE KZ LT LU XK".split(), 20),
    **dict.fromkeys("CH HR LI LV".split(), 21),
    **dict.fromkeys("BG BH CR DE GB GE IE ME RS VA".split(), 22),
    **dict.fromkeys("AE GI IL IQ TL".split(), 23),
    **dict.fromkeys("AD CZ ES MD PK RO SA SE SK TN VG".split(), 24),
    **dict.fromkeys("PT ST".split(), 25),
    **dict.fromkeys("IS TR".split(), 26),
    **dict.fromkeys("FR GR IT MC MR SM".split(), 27),
    **dict.fromkeys("AL AZ BY CY DO GT HU LB PL SV".split(), 28),
    **dict.fromkeys("BR EG PS QA UA".split(), 29),
    **dict.fromkeys("JO KW MU".split(), 30),
    **dict.fromkeys("MT SC".split(), 31),
    **dict.fromkeys("LC".split(), 32),
}


def iban_ok(match: str) -> bool:
    value = match.replace(" ", "")
    if _IBAN_LENGTHS.get(value[:2]) != len(value):
        return False
    rearranged = value[4:] + value[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ipv6_ok(match: str) -> bool:
    try:
        ipaddress.IPv6Address(match)
    except ValueError:
        return False
    groups = [g for g in match.split(":") if g]
    # "::1", "::" and "a::b" are loopback, unspecified or C++-like tokens, not personal data.
    return len(groups) >= 3 or any(len(g) >= 3 for g in groups)


def _ipv4_ok(match: str) -> bool:
    try:
        ipaddress.IPv4Address(match)
    except ValueError:
        return False
    return True


def _phone_ok(match: str) -> bool:
    digits = sum(ch.isdigit() for ch in _EXTENSION.sub("", match))
    return 8 <= digits <= 15  # E.164: at most 15 digits


# An extension after a phone number ("x704", "ext. 12") goes with it.
_EXT = r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,5})?"
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?\d{1,5}$")
# A bare ten-digit run is a US number only when it is not labelled as something else.
_LABELLED = re.compile(
    r"(?:(?<![A-Za-z])(?:order|invoice|ticket|tracking|ref|reference|sku|serial|account|acct|id|isbn|"
    r"item|part|case|no)|#|订单|单号|编号|账号)[^0-9A-Za-z]{0,4}(?:(?:number|no|num)[^0-9A-Za-z]{0,3})?$",
    re.IGNORECASE,
)


def _bare_us_ok(match: re.Match[str]) -> bool:
    return not _LABELLED.search(match.string[max(0, match.start() - 24) : match.start()])


@dataclass(frozen=True)
class _Detector:
    kind: PiiType
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None  # judges the matched text
    valid_in_context: Callable[[re.Match[str]], bool] | None = None  # judges the match in its text


_DETECTORS = (
    _Detector(
        "email",
        re.compile(
            r"(?<![0-9A-Za-z._%+-])[0-9A-Za-z][0-9A-Za-z._%+-]*@"
            r"(?:[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?\.)+[A-Za-z]{2,24}(?![0-9A-Za-z-])"
        ),
    ),
    _Detector(
        "iban",
        re.compile(
            rf"(?<![{_A}])[A-Z]{{2}}\d{{2}}(?: ?[A-Z0-9]{{4}}){{2,7}}(?: ?[A-Z0-9]{{1,3}})?(?![{_A}])"
        ),
        iban_ok,
    ),
    _Detector("cn_id", re.compile(rf"(?<![{_A}])[1-9]\d{{16}}[0-9Xx](?![{_A}])"), cn_id_ok),
    _Detector(
        "credit_card",
        re.compile(
            rf"(?<![{_A}+.])(?<!\d[ -])[2-6]\d{{3}}(?:[ -]?\d){{9,15}}(?![ -]?\d)(?![{_A}])"
        ),
        _card_ok,
    ),
    _Detector(
        "phone",
        re.compile(rf"(?<![{_A}+])\+\d{{1,3}}(?:[ .-]?\(?\d{{1,4}}\)?){{2,6}}{_EXT}(?![{_A}])"),
        _phone_ok,
    ),
    # US/Canada (NANP) national formats: (797) 624-4944, 797-624-4944, 580.622.5179,
    # 797 624 4944, 1-797-624-4944, 001-797-624-4944; area code and exchange start with 2-9.
    # Not after '-', '.', '/' or a digit: that is a date, version, ISBN or part of a longer code.
    _Detector(
        "phone",
        re.compile(
            rf"(?<![{_A}+./-])(?<!\d[ ])(?:(?:1|001)[ .-]?)?(?:\([2-9]\d{{2}}\)[ ]?|[2-9]\d{{2}}[ .-])"
            rf"[2-9]\d{{2}}[ .-]\d{{4}}{_EXT}(?![{_A}]|[.-]\d)"
        ),
    ),
    _Detector(
        "phone",
        re.compile(rf"(?<![{_A}+./-])(?<!\d[ ])[2-9]\d{{2}}[2-9]\d{{6}}{_EXT}(?![{_A}]|[.,-]\d)"),
        valid_in_context=_bare_us_ok,
    ),
    # Chinese landlines: 0 + area code (10, 2X or three digits) + a 7-8 digit local number:
    # 010-12345678, 0755-1234567, (021) 8765 4321.
    _Detector(
        "phone",
        re.compile(
            rf"(?<![{_A}+./-])(?<!\d[ ])(?:\(0(?:10|2\d|[3-9]\d{{2}})\)[ ]?|0(?:10|2\d|[3-9]\d{{2}})[ -])"
            rf"\d{{3,4}}[ -]?\d{{4}}(?![{_A}]|[.-]\d)"
        ),
    ),
    _Detector(
        "phone",
        re.compile(
            rf"(?<![{_A}+])(?<!\d[ .-])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{{4}}){{2}}"
            rf"(?![ -]?\d)(?![{_A}])"
        ),
    ),
    _Detector(
        "ip_address",
        re.compile(
            rf"(?<![{_A}:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}"
            rf"(?:\d{{1,3}}(?:\.\d{{1,3}}){{3}}|[0-9A-Fa-f]{{0,4}})(?![{_A}:]|\.\d)"
        ),
        _ipv6_ok,
    ),
    _Detector(
        "ip_address",
        re.compile(rf"(?<![{_A}.])(?:\d{{1,3}}\.){{3}}\d{{1,3}}(?![{_A}]|\.[{_A}])"),
        _ipv4_ok,
    ),
)


def redact(text: str, types: tuple[str, ...] | list[str] = PII_TYPES) -> tuple[str, Counter]:
    """`text` with every PII item of `types` replaced by its placeholder, and the counts."""
    counts: Counter = Counter()
    for detector in _DETECTORS:
        if detector.kind not in types:
            continue
        placeholder = PLACEHOLDERS[detector.kind]

        def replace(m: re.Match[str], d: _Detector = detector, p: str = placeholder) -> str:
            if d.valid is not None and not d.valid(m.group(0)):
                return m.group(0)
            if d.valid_in_context is not None and not d.valid_in_context(m):
                return m.group(0)
            counts[d.kind] += 1
            return p

        text = detector.pattern.sub(replace, text)
    return text, counts
