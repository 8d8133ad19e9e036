"""Progress of the CLI's long jobs, on standard error, only on a terminal.

:func:`reporter` gives a :class:`Progress` that draws a rich progress bar on stderr when stderr
is a terminal and ``--quiet`` was not given, and does nothing otherwise (piped, redirected, in
CI, under a test runner): standard output, the data, never carries it, and nothing is left
behind when the job ends (the bar is transient).

:class:`Watched` is a view of a log that reports how far each pass over it has read: the
library reads the log as it always does (a replay, snapshots, the projection tables, an
export) and the bar moves, with no callback threaded through the library.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

#: How many records between two updates of the bar (an update takes a lock).
EVERY = 512


class Progress:
    """A no-op progress: what a job reports when nobody is watching."""

    active = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def task(self, label: str, total: int | None = None) -> Any:
        return None

    def update(self, task: Any, completed: int, total: int | None = None) -> None:
        return None

    def done(self, task: Any) -> None:
        return None


class _Bar(Progress):
    active = True

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        class Count(ProgressColumn):
            """``12,288/200,000 events, 1:05 left``; a job of unknown length: its count, if any."""

            def render(self, task: Any) -> Text:
                if task.total is None:
                    return Text(f"{int(task.completed):,}" if task.completed else "")
                left = task.time_remaining
                eta = f", {int(left) // 60}:{int(left) % 60:02d} left" if left is not None else ""
                return Text(f"{int(task.completed):,}/{int(task.total):,}{eta}")

        self._rich = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            Count(),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
            # Never through stderr's console: standard output stays the data, wherever it goes.
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> Progress:
        self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._rich.stop()

    def task(self, label: str, total: int | None = None) -> Any:
        return self._rich.add_task(label, total=total)

    def update(self, task: Any, completed: int, total: int | None = None) -> None:
        if total is not None:
            self._rich.update(task, completed=completed, total=total)
        else:
            self._rich.update(task, completed=completed)

    def done(self, task: Any) -> None:
        self._rich.remove_task(task)


def reporter(quiet: bool = False) -> Progress:
    """A progress bar on stderr if it is a terminal and not ``quiet``, else a no-op."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return _Bar() if terminal and not quiet else Progress()


def counted(items: Any, progress: Progress, label: str, total: int | None = None) -> Iterator[Any]:
    """``items``, reporting how many have gone by."""
    if not progress.active:
        yield from items
        return
    task = progress.task(label, total)
    n = 0
    try:
        for item in items:
            n += 1
            if n % EVERY == 0:
                progress.update(task, n)
            yield item
    finally:
        progress.done(task)


class Watched:
    """``log``, whose passes over the records report their seq against the head."""

    def __init__(self, log: Any, progress: Progress, label: str) -> None:
        self._log = log
        self._progress = progress
        self._label = label
        self._passes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def __enter__(self) -> Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        self._log.close()

    def __len__(self) -> int:
        return len(self._log)

    def _watch(self, items: Iterator[Any], seq_of: Any, from_seq: int) -> Iterator[Any]:
        if not self._progress.active:
            yield from items
            return
        self._passes += 1
        head = self._log.head().seq
        label = self._label if self._passes == 1 else f"{self._label} (pass {self._passes})"
        task = self._progress.task(label, head)
        self._progress.update(task, from_seq - 1)
        n = 0
        try:
            for item in items:
                n += 1
                if n % EVERY == 0:
                    self._progress.update(task, seq_of(item, n))
                yield item
        finally:
            self._progress.done(task)

    def iter_records(self, *, from_seq: int = 1, **kw: Any) -> Iterator[Any]:
        return self._watch(self._log.iter_records(from_seq=from_seq, **kw), lambda r, _n: r.seq, from_seq)

    def iter_payloads(self, *, from_seq: int = 1, **kw: Any) -> Iterator[Any]:
        return self._watch(self._log.iter_payloads(from_seq=from_seq, **kw), lambda t, _n: t[0], from_seq)

    def iter_events(self, *, from_seq: int = 1, **kw: Any) -> Iterator[Any]:
        return self._watch(self._log.iter_events(from_seq=from_seq, **kw), lambda _e, n: from_seq + n - 1, from_seq)
