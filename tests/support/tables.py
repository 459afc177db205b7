"""Reading a table the CLI printed (rich's box drawing) back as rows, as a person reads it.

A row may be several lines tall (values stacked in a cell, a long one wrapped); rows are parted by a
rule line, so each cell's lines are joined with a space. Values are compared as read, whatever the width.
"""

from __future__ import annotations

_RULE_STARTS = ("┏", "┡", "├", "└", "┗")


def table_rows(output: str) -> list[dict[str, str]]:
    """Every body row of the first table in ``output``, as ``{header: cell text}``."""
    header: list[list[str]] = []
    rows: list[list[list[str]]] = []
    part = "before"
    for line in output.splitlines():
        if line.startswith("┏"):
            part = "header"
        elif line.startswith("┡"):
            part, rows = "body", [[]]
        elif part == "body" and line.startswith("├"):
            rows.append([])
        elif part == "body" and line.startswith("└"):
            break
        elif line.startswith(("┃", "│")) and part in ("header", "body"):
            cells = [cell.strip() for cell in line.strip()[1:-1].split(line.strip()[0])]
            (header if part == "header" else rows[-1]).append(cells)
    names = [" ".join(filter(None, column)) for column in zip(*header, strict=True)]
    return [
        {name: " ".join(filter(None, column)) for name, column in zip(names, zip(*row, strict=True), strict=True)}
        for row in rows
        if row
    ]
