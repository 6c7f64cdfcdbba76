"""Commands printed for the user to paste: each value quoted for Hydra's grammar, each word for the shell.

A path with spaces, quotes or non-ASCII characters must survive two readers: the shell splits the line
into words, then Hydra's override grammar reads `key=value`. So a value that is not a plain word is put
in single quotes for Hydra (its real characters, never `\\u` escapes), and the whole word is quoted
again for the shell (`shlex.join`).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][\w./+-]*", re.ASCII)  # the grammar's bare words are ASCII
_KEYWORDS = ("true", "false", "null", "inf", "nan")


def hydra_value(value: Any) -> str:
    """A string as a value Hydra's override grammar reads back unchanged: bare when it can be, else quoted."""
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    # Double quotes read best once the shell has put the word in single quotes. Inside them the grammar
    # needs a backslash before the quote character and doubles a backslash that precedes a quote (or the
    # closing quote); `${` would start an interpolation, so it is escaped too.
    quote = '"' if '"' not in text or "'" in text else "'"
    body = re.sub(r"(\\*)" + quote, lambda m: m.group(1) * 2 + "\\" + quote, text)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    body = body.replace("${", "\\${")
    return f"{quote}{body}{quote}"


def command(module: str, *words: str, **settings: Any) -> str:
    """`python -m module words... key=value...`, ready to paste into a shell (values quoted for Hydra)."""
    args = [*words, *(f"{key}={hydra_value(value)}" for key, value in settings.items())]
    return shlex.join(["python", "-m", module, *args])
