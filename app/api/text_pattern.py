"""What the API calls a non-blank text, one pattern for the schema and the checks (texts,
and question answering's questions and contexts)."""

# Whitespace spelled out rather than `\S`: a schema's `\S` is ECMA-262's, for which
# U+001C-U+001F and U+0085 are visible and U+FEFF is blank, the reverse of Python's
# str.isspace; a fuzzer sent "\x1f", which the schema allowed and the check refused. The
# same class means the same in both, and the checks search with this very pattern.
TEXT_PATTERN = (r"[^\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
                r"\u3000\ufeff]")
