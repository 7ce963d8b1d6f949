"""Identifiers of the example data: VINs with check digits, mobile numbers, WeChat ids, id numbers.

All generators are pure functions of an index (and the seed), so ids are unique without keeping a set
of everything issued: an affine permutation of the index spreads them so they do not look sequential.
"""

from __future__ import annotations

import hashlib

from gen_reference import JUNK_PHONES, MOBILE_PREFIXES

# ISO 3779 / 49 CFR 565 check digit (position 9), as used in North America and China (GB 16735)
VIN_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
# model-year code (position 10); the 30-year cycle repeats, 2001-2009 are digits
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"


def vin_check_digit(vin: str) -> str:
    """The check character for a 17-character VIN (the character at position 9 is ignored)."""
    total = sum(VIN_TRANSLITERATION[c] * w for c, w in zip(vin, VIN_WEIGHTS))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def vin_is_valid(vin: str) -> bool:
    """17 characters, no I/O/Q, and the check digit matches."""
    if len(vin) != 17 or any(c not in VIN_TRANSLITERATION for c in vin):
        return False
    return vin[8] == vin_check_digit(vin)


def model_year_code(year: int) -> str:
    return _YEAR_CODES[(year - 1980) % 30]


def make_vin(wmi: str, vds: str, year: int, plant: str, serial: int) -> str:
    """Build a valid VIN from its parts (serial: 0..999999)."""
    body = f"{wmi}{vds}0{model_year_code(year)}{plant}{serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def affine(index: int, modulus: int, multiplier: int, offset: int) -> int:
    """A permutation of range(modulus) (multiplier must be coprime with modulus)."""
    return (index * multiplier + offset) % modulus


_PHONE_SPACE = 100_000_000


def mobile_number(index: int, seed: int) -> str:
    """An 11-digit China mobile number, unique per index (index < 35 * 10**8)."""
    n = len(MOBILE_PREFIXES)
    mixed = affine(index, n * _PHONE_SPACE, 2_654_435_761, 7_919 * (seed % 9973) + 12_345)
    prefix = MOBILE_PREFIXES[mixed % n]
    suffix = affine(mixed // n, _PHONE_SPACE, 48_271_907, seed % 99_991)
    number = f"{prefix}{suffix:08d}"
    if number in JUNK_PHONES:  # never hand a real person a junk number
        number = f"{prefix}{(suffix + 1) % _PHONE_SPACE:08d}"
    return number


def format_mobile(number: str, style: int) -> str:
    """The same mobile number as different systems type it."""
    if style == 0:
        return number
    if style == 1:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if style == 2:
        return f"+86 {number}"
    if style == 3:
        return f"+86{number}"
    if style == 4:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    return f"86{number}"


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def wechat_id(kind: str, index: int, seed: int) -> str:
    """A 28-character WeChat openid/unionid look-alike ("o" + 27 url-safe base64 characters).

    ``kind`` separates the id spaces: the service account's openid, the mini-program's openid and the
    unionid of one person are different strings (openids are per app; the unionid is per company).
    """
    digest = hashlib.blake2b(f"{seed}:{kind}:{index}".encode(), digest_size=21).digest()
    bits = int.from_bytes(digest, "big")
    chars = []
    for _ in range(27):
        chars.append(_B64[bits & 63])
        bits >>= 6
    return "o" + "".join(chars)


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def national_id(region: str, birth: str, sequence: int) -> str:
    """A fake 18-character resident id number (region + yyyymmdd + sequence + ISO 7064 check)."""
    body = f"{region}{birth}{sequence % 1000:03d}"
    return body + _ID_CHECK[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS)) % 11]


def national_id_hash(number: str) -> str:
    """What the insurance-agency system exports: hex SHA-256 of the id number, never the number."""
    return hashlib.sha256(number.encode()).hexdigest()


def uuid_text(bits: int) -> str:
    """128 random bits formatted as a version-4 UUID string."""
    bits = (bits & ~(0xF << 76)) | (0x4 << 76)
    bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
