"""What text may hold: one rule for a rater's name, and one way to show any text on one line.

A rater's name ends up in the listening results file and on the run page, beside other raters' names and
scores, so it must not be able to split a line, reorder what a reader sees, or look like nothing
(or like someone else). The rule, applied to every character:

- *hidden* characters are refused anywhere: Unicode's control (Cc), format (Cf: zero-width
  spaces and joiners, bidirectional marks, embeddings, overrides and isolates), surrogate (Cs),
  private-use (Co) and unassigned (Cn) categories, the line and paragraph separators (Zl, Zp),
  and every default-ignorable code point (variation selectors, Hangul fillers, tag characters),
  which renderers draw as nothing;
- a name needs at least one *visible* character: a letter, number, punctuation mark or symbol
  (L, N, P, S) that is not hidden and not a blank glyph. Spaces (Zs) and combining marks (M)
  may only accompany visible characters.

Text that did not pass the rule (a clip or loss name from the run, a name stored by an earlier
version) is shown through :func:`one_line`, which escapes every hidden character.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 80

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
VISIBLE_CATEGORY_CLASSES = frozenset("LNPS")

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 14.0; the
# same ranges through 15.1): code points a renderer shows as nothing when it has no glyph for them.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# Symbols whose glyph is blank by design, though Unicode calls them neither space nor ignorable.
BLANK_GLYPHS = frozenset({"\u2800"})  # BRAILLE PATTERN BLANK


def is_default_ignorable(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in DEFAULT_IGNORABLE)


def is_hidden(char: str) -> bool:
    """Whether ``char`` is never allowed in a name (and is escaped by :func:`one_line`)."""
    return unicodedata.category(char) in HIDDEN_CATEGORIES or is_default_ignorable(char)


def is_visible(char: str) -> bool:
    """Whether ``char`` alone makes a name readable."""
    return (unicodedata.category(char)[0] in VISIBLE_CATEGORY_CLASSES and not is_hidden(char)
            and char not in BLANK_GLYPHS)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a rater's name, in a phrase naming the character; ``None`` if it can."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"a rater's name is 1 to {MAX_NAME_LENGTH} characters, not {len(name)}"
    for char in name:
        if is_hidden(char):
            return (f"a rater's name may not hold {code_point(char)}: control, format, line-separating or "
                    "invisible characters could forge, split or hide a line of the results")
    if not any(is_visible(char) for char in name):
        return "a rater's name needs a visible character (a letter, digit, punctuation or symbol)"
    return None


def code_point(char: str) -> str:
    """``U+2028 (LINE SEPARATOR)``; unnamed code points by number alone."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def one_line(text: str) -> str:
    """``text`` with every hidden character written as an escape (``\\u2028``), so that whatever it
    holds it is shown as what it is and stays on one line."""
    return "".join(_escape(char) if is_hidden(char) else char for char in str(text))


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
