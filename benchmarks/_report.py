"""Writing a benchmark's result: the table on stdout, OUT.json and OUT.md beside it."""

import json
from pathlib import Path


def report(table: str, result: dict, out=None) -> None:
    """Print the markdown ``table``; with ``out``, write ``result`` to OUT.json and the
    table to OUT.md."""
    print(table)
    if out:
        Path(f"{out}.json").write_text(json.dumps(result, indent=2))
        Path(f"{out}.md").write_text(table + "\n")
