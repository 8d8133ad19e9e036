"""Tables for people: the CLI's text output, laid out by rich.

On a terminal a table fits the terminal's width (long cells fold onto the next line). Piped or
redirected (``| grep``, ``> file``), it is plain text: no ANSI codes, no box characters, no
padding after the last cell, one row a line at its natural width, so grep and cut see whole
rows. ``NO_COLOR`` is honoured; ``COLUMNS`` sets the width where there is no terminal to ask.

Two kinds of table:

- :func:`render` lays out a table whose rows are all known (balances, a diff, a summary):
  rich measures every cell and sizes each column.
- :class:`Stream` prints rows as they come (a replay's steps, ``log``, ``history``): rich costs
  about 0.75 ms a row, 150 s for 200,000 rows, so a stream has fixed column widths, declared
  once, and its rows are cut to them (``…``) with rich's cell widths, the last column left free
  (folded to the terminal's width on a terminal).

Cells are text already formatted by the caller (see :func:`money`, :func:`amount`): the library
returns values; this module and the CLI decide how they read.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import IO, Any

import attrs
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Between two columns.
GAP = "  "


@attrs.frozen
class Column:
    """A column: its header; ``right`` for numbers; ``wrap`` for free text that may fold onto
    more lines on a narrow terminal (other cells, names and numbers, stay whole, or are cut
    with ``…`` when nothing else fits); for a stream, its ``width`` in cells, which a
    ``shrink`` column gives up on a narrow terminal."""

    header: str
    right: bool = False
    width: int | None = None
    wrap: bool = False
    shrink: bool = False


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _console(terminal: bool) -> Console:
    if terminal:
        return Console(
            width=_terminal_width(), highlight=False, markup=False, emoji=False,
            no_color="NO_COLOR" in os.environ, force_terminal=True,
        )
    # Piped: no colour, no control codes, wide enough that no row wraps.
    return Console(
        width=1_000_000, color_system=None, force_terminal=False, no_color=True,
        highlight=False, markup=False, emoji=False, legacy_windows=False, soft_wrap=False,
    )


def render(columns: Sequence[Column], rows: Iterable[Sequence[str]], *, indent: int = 0, terminal: bool | None = None) -> list[str]:
    """The table as lines of text (see the module doc); an empty table is its header only."""
    terminal = is_terminal() if terminal is None else terminal
    table = Table(
        box=None, pad_edge=False, show_edge=False, padding=(0, 1),
        header_style="bold" if terminal else None, show_header=True,
    )
    for c in columns:
        table.add_column(
            c.header, justify="right" if c.right else "left",
            overflow="fold" if c.wrap else "ellipsis", no_wrap=not c.wrap, min_width=20 if c.wrap else None,
        )
    rows = [list(row) for row in rows]
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console = _console(terminal)
    if terminal:
        console.width = max(_terminal_width() - indent, 20)
        # Names and numbers are never cut: a table that cannot fit with its free text folded
        # is printed whole, at its natural width, for the terminal to wrap.
        natural = [max([cell_len(c.header), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        least = [min(n, 20) if c.wrap else n for n, c in zip(natural, columns)]
        gaps = len(GAP) * (len(columns) - 1)
        if sum(least) + gaps > console.width:
            console.width = sum(natural) + gaps
    with console.capture() as captured:
        console.print(table)
    pad = " " * indent
    return [(pad + line).rstrip() for line in captured.get().split("\n") if line.strip()]


class Stream:
    """A table printed a row at a time, every column but the last of a fixed width.

    On a terminal narrower than the row, ``shrink`` columns narrow (to 24 cells at least) to
    leave the last column 34 cells, which wraps under itself; if that does not fit, the last
    column goes on lines of its own beneath the row, indented, and the others keep their
    widths (or narrow, to 12 cells at least, to fit the terminal).
    """

    MIN_LAST = 34
    INDENT = 6

    def __init__(self, columns: Sequence[Column], *, terminal: bool | None = None) -> None:
        if any(c.width is None for c in columns[:-1]):
            raise ValueError("every column of a stream but the last needs a width")
        self.terminal = is_terminal() if terminal is None else terminal
        self.width = _terminal_width() if self.terminal else None
        widths = [c.width or 0 for c in columns[:-1]]
        if self.width is not None:
            gaps = len(GAP) * len(widths)
            inline = _narrowed(columns[:-1], widths, self.width - gaps - self.MIN_LAST, least=24)
            if inline is not None:
                widths = inline  # the last column fits beside the row
            elif sum(widths) + gaps > self.width:
                widths = _narrowed(columns[:-1], widths, self.width - gaps, least=12) or widths
        self.columns = [attrs.evolve(c, width=w) for c, w in zip(columns[:-1], widths)] + [columns[-1]]
        self._lead = sum(widths) + len(GAP) * len(widths)

    def header(self) -> str:
        return self.row([c.header for c in self.columns])

    def row(self, cells: Sequence[str]) -> str:
        parts = []
        for column, cell in zip(self.columns[:-1], cells):
            width = column.width or 0
            if cell_len(cell) > width:
                cell = set_cell_size(cell, width - 1) + "…"
            pad = " " * (width - cell_len(cell))
            parts.append(pad + cell if column.right else cell + pad)
        last = cells[len(self.columns) - 1] if len(cells) >= len(self.columns) else ""
        head = GAP.join(parts)
        if self.width is None or not last or self._lead + cell_len(last) <= self.width:
            return (head + (GAP + last if last else "")).rstrip()
        room = self.width - self._lead
        if room >= self.MIN_LAST:
            wrapped = textwrap.wrap(last, room, break_on_hyphens=False, break_long_words=False) or [last]
            pad = " " * self._lead
            return head + GAP + wrapped[0] + "".join("\n" + pad + w for w in wrapped[1:])
        pad = " " * self.INDENT
        wrapped = textwrap.wrap(last, max(self.width - self.INDENT, 20), break_on_hyphens=False, break_long_words=False) or [last]
        return head.rstrip() + "".join("\n" + pad + w for w in wrapped)


def _narrowed(columns: Sequence[Column], widths: list[int], room: int, *, least: int) -> list[int] | None:
    """``widths`` with the ``shrink`` columns narrowed (to ``least`` at most) so that they sum
    to ``room`` or less; None if that is not enough."""
    out = list(widths)
    excess = sum(out) - room
    for i, c in enumerate(columns):
        if excess > 0 and c.shrink and out[i] > least:
            give = min(excess, out[i] - least)
            out[i] -= give
            excess -= give
    return out if excess <= 0 else None


# -- numbers, one form a table ----------------------------------------------------------------
def money(value: Decimal | str | None) -> str:
    """A value in the quote asset, whole units grouped: ``8,910,000,000`` (never ``8.91B`` beside
    ``500,000``); empty for no value."""
    if value is None or value == "":
        return ""
    whole = Decimal(value).quantize(Decimal(1))
    return f"{whole if whole else Decimal(0):,f}"


def amount(value: Decimal | str | None) -> str:
    """An exact amount, grouped, in plain notation (``0.00000000``, never ``0E-8``); ``-``
    where there is none (a price or loan that did not exist yet)."""
    if value is None or value == "":
        return "-"
    return f"{Decimal(value):,f}"


def echo_lines(lines: Iterable[str], out: Any = None) -> None:
    import click

    for line in lines:
        click.echo(line, file=out)
