"""Syntax highlighting of rule text as HTML spans (keywords, strings, numbers, comments), escaped."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from markupsafe import Markup, escape


@lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """Every keyword of the rule language, read from its grammar (so new keywords highlight too)."""
    grammar = resources.files("motorcade.dsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    return frozenset(re.findall(r'"([a-z_]+)"i?', grammar))


_TOKEN = re.compile(r'(?P<comment>#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"?)|(?P<number>\b\d+(?:\.\d+)?\b)'
                    r'|(?P<word>[A-Za-z_][A-Za-z0-9_]*)')


def highlight(text: str) -> Markup:
    """``text`` as HTML with ``<span class="k|s|n|c">`` around keywords, strings, numbers and comments."""
    out, pos, words = [], 0, keywords()
    for match in _TOKEN.finditer(text):
        out.append(escape(text[pos:match.start()]))
        kind, value = match.lastgroup, match.group()
        if kind == "word":
            out.append(Markup('<span class="k">{}</span>').format(value) if value in words else escape(value))
        else:
            css = {"comment": "c", "string": "s", "number": "n"}[kind]
            out.append(Markup('<span class="{}">{}</span>').format(css, value))
        pos = match.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)
