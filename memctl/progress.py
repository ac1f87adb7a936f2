"""Progress bars for long board work (rich), shown on terminals by default."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Advance = Callable[[int], None]


@contextmanager
def progress_bar(label: str, total: int, show: bool | None | Advance) -> Iterator[Advance]:
    """Yield advance(n). show=None means: only when stderr is a terminal. show may also be an advance(n) of
    the caller's own, yielded as it is: work counted into one bar the caller draws (boards working
    concurrently: rich shows one live display at a time) instead of a bar of its own."""
    if callable(show):
        yield show
        return
    if show is None:
        show = sys.stderr.isatty()
    if not show or total <= 0:
        yield lambda n: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
