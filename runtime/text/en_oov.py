"""Rule-based English letter-to-sound for words missing from CMUdict (our own small fallback, no model).

Greedy longest-match grapheme rules with a few context checks (magic e, soft c/g, final y), then stress 1 on
the first vowel and 0 on the others. It is a fallback for product names and coinages, not a reference G2P.
"""

from __future__ import annotations

from typing import Final

VOWELS: Final = frozenset("aeiouy")
# (grapheme, phones); vowel phones carry no stress digit here, it is assigned afterwards.
RULES: Final = (
    ("tion", "SH AH N"), ("sion", "ZH AH N"), ("ture", "CH ER"), ("ough", "AO"), ("augh", "AO"), ("eigh", "EY"),
    ("igh", "AY"), ("tch", "CH"), ("dge", "JH"), ("sch", "S K"), ("que", "K"), ("ght", "T"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("wh", "W"), ("ck", "K"), ("ng", "NG"), ("qu", "K W"),
    ("kn", "N"), ("wr", "R"), ("gh", "G"), ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"), ("ow", "OW"),
    ("oi", "OY"), ("oy", "OY"), ("ai", "EY"), ("ay", "EY"), ("ey", "EY"), ("ei", "EY"), ("au", "AO"), ("aw", "AO"),
    ("oa", "OW"), ("ie", "IY"), ("ue", "UW"), ("ew", "UW"), ("ar", "AA R"), ("or", "AO R"), ("er", "ER"),
    ("ir", "ER"), ("ur", "ER"), ("ll", "L"), ("ss", "S"), ("ff", "F"), ("tt", "T"), ("pp", "P"), ("mm", "M"),
    ("nn", "N"), ("rr", "R"), ("bb", "B"), ("dd", "D"), ("gg", "G"), ("zz", "Z"),
    ("b", "B"), ("d", "D"), ("f", "F"), ("h", "HH"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"),
    ("p", "P"), ("r", "R"), ("s", "S"), ("t", "T"), ("v", "V"), ("w", "W"), ("x", "K S"), ("z", "Z"), ("g", "G"),
)
_SHORT: Final = {"a": "AE", "e": "EH", "i": "IH", "o": "AA", "u": "AH", "y": "IH"}
_LONG: Final = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW", "y": "AY"}
_VOWEL_PHONES: Final = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


def _letter(word: str, i: int) -> str:
    return word[i] if 0 <= i < len(word) else ""


def _vowel(word: str, i: int) -> list[str]:
    char = word[i]
    if char == "y" and (i == 0 or _letter(word, i + 1) in VOWELS):
        return ["Y"]  # consonant y
    if char == "y" and i == len(word) - 1:
        return ["IY"] if len(word) > 2 else ["AY"]
    if char == "e" and i == len(word) - 1 and i > 0:
        return []  # silent final e
    # magic e: vowel + one consonant + final e -> long vowel
    if _letter(word, i + 2) == "e" and i + 3 == len(word) and _letter(word, i + 1) not in VOWELS | {""}:
        return [_LONG[char]]
    if i == len(word) - 1:
        return ["AH"] if char == "a" else [_LONG[char]]
    return [_SHORT[char]]


def letters_to_phones(word: str) -> list[str]:
    """Phones with stress for a lower-case alphabetic word."""
    word = "".join(char for char in word.lower() if char.isalpha())
    phones: list[str] = []
    i = 0
    while i < len(word):
        char = word[i]
        if char == "c":
            phones.append("S" if _letter(word, i + 1) in {"e", "i", "y"} else "K")
            i += 2 if _letter(word, i + 1) == "c" else 1
            continue
        if char == "g" and _letter(word, i + 1) in {"e", "i", "y"} and i + 1 < len(word) - 1:
            phones.append("JH")
            i += 1
            continue
        for grapheme, rule in RULES:
            if word.startswith(grapheme, i):
                phones += rule.split()
                i += len(grapheme)
                break
        else:
            if char in VOWELS:
                phones += _vowel(word, i)
            i += 1
    return add_stress(phones)


def add_stress(phones: list[str]) -> list[str]:
    """Primary stress on the first vowel, none on the rest (ER gets ER1/ER0 like the others)."""
    out, stressed = [], False
    for phone in phones:
        if phone in _VOWEL_PHONES:
            out.append(phone + ("0" if stressed else "1"))
            stressed = True
        else:
            out.append(phone)
    return out
