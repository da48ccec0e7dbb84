"""Tables that never cut what a person must copy (ids, event types, URLs) with "…".

Rich shortens a cell that does not fit its column with an ellipsis; the id one then pastes is not an id.
Here every column folds instead of cutting, columns that matter less are left out when the table is
wider than the terminal (the footnote says which; `--json` has everything), and a value to copy keeps
its whole width on one line while the terminal allows it. When even the values to copy do not fit side
by side, each row is shown as a block of `field  value` lines instead (nothing left out).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table


@dataclass(frozen=True)
class Col:
    name: str
    copy: bool = False  # a value a person copies: never dropped, kept on one line when it fits
    drop: int = 0  # among the others, higher is left out first (0: left out last)


def table_width(widths: list[int]) -> int:
    """Rich's default box: one space of padding each side and a rule between and around columns."""
    return sum(widths) + 3 * len(widths) + 1


def natural_widths(cols: list[Col], rows: list[list[str]]) -> list[int]:
    """The widest line of each column (a cell may hold several lines, e.g. one event type each)."""
    return [
        max([len(c.name)] + [len(line) for r in rows for line in r[i].split("\n")])
        for i, c in enumerate(cols)
    ]


def kept_columns(cols: list[Col], rows: list[list[str]], width: int) -> list[int]:
    """Indexes of the columns shown (pure): drop the most droppable non-copy column while too wide."""
    widths = natural_widths(cols, rows)
    kept = list(range(len(cols)))
    order = sorted((i for i, c in enumerate(cols) if not c.copy), key=lambda i: (-cols[i].drop, -i))
    for i in order:
        if table_width([widths[k] for k in kept]) <= width:
            break
        kept.remove(i)
    return kept


def fitted(cols: list[Col], rows: list[list[str]], width: int) -> tuple[Table, list[str]]:
    """(a rich Table of the columns that fit, names of the columns left out)."""
    widths = natural_widths(cols, rows)
    if table_width([w for w, c in zip(widths, cols, strict=True) if c.copy]) > width:
        return stacked(cols, rows), []
    kept = kept_columns(cols, rows, width)
    fits = table_width([widths[k] for k in kept]) <= width
    table = Table()
    for k in kept:
        col = cols[k]
        # min_width keeps a copyable value on one line when the whole table fits; "fold" breaks a value
        # that is longer than the terminal itself across lines rather than cutting it.
        table.add_column(
            col.name,
            overflow="fold",
            min_width=widths[k] if (col.copy and fits) else None,
            no_wrap=col.copy and fits,
        )
    for r in rows:
        table.add_row(*(r[k] for k in kept))
    return table, [cols[i].name for i in range(len(cols)) if i not in kept]


def stacked(cols: list[Col], rows: list[list[str]]) -> Table:
    """One block of `field  value` lines per row: the value column has nearly the whole width."""
    table = Table(show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for r in rows:
        for i, c in enumerate(cols):
            table.add_row(c.name, r[i], end_section=i == len(cols) - 1)
    return table


def footnote(left_out: list[str]) -> str | None:
    if not left_out:
        return None
    return f"(not shown at this width: {', '.join(left_out)}; see --json)"
