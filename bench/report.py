"""How a benchmark ends: its table on stdout and its figures as JSON under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(table: str, result: dict[str, Any], path: Path) -> int:
    """Print ``table``, write ``result`` to ``path`` as JSON; the exit status (0)."""
    print(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {path}")
    return 0
