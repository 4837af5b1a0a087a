"""Report helpers shared by the benchmarks: print a line or a markdown table and keep it
for the results file."""

from __future__ import annotations

import os

OUT: list[str] = []
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def emit(text: str = "") -> None:
    print(text)
    OUT.append(text)


def table(header: list[str], rows: list[list[str]]) -> None:
    emit("| " + " | ".join(header) + " |")
    emit("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        emit("| " + " | ".join(r) + " |")
    emit()


def save(name: str) -> None:
    """Write everything emitted to ``benchmarks/results/<name>.md``."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write("\n".join(OUT) + "\n")
