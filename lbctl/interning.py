"""One string object for equal strings that many indexes keep (object keys, ADC names).

``sys.intern`` would do on Python 3.11 and 3.13, but on 3.12 interned strings are immortal
(PEP 683): every key lbctl ever saw would stay in memory, about 100 bytes each, however many
Services came and went (measured: 1,000,000 keys interned and dropped kept 106 MB on 3.12.1,
none on 3.11.7 and 3.13.0).  This table is lbctl's own and bounded instead.
"""

from __future__ import annotations

KEPT = 1 << 18
"""Strings the table holds at most; when full it starts again (strings in use stay alive where
they are used, and equal ones met later are shared anew)."""

_table: dict[str, str] = {}


def shared(text: str) -> str:
    """The one object held for strings equal to ``text`` (``text`` itself the first time)."""
    found = _table.get(text)
    if found is None:
        if len(_table) >= KEPT:
            _table.clear()
        found = _table[text] = text
    return found
