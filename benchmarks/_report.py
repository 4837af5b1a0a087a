"""Report helpers shared by the benchmarks: print a line or a markdown table and keep it
for the results file."""

from __future__ import annotations

OUT: list[str] = []


def emit(text: str = "") -> None:
    print(text)
    OUT.append(text)


def table(header: list[str], rows: list[list[str]]) -> None:
    emit("| " + " | ".join(header) + " |")
    emit("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        emit("| " + " | ".join(r) + " |")
    emit()
