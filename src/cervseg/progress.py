"""A progress bar for anything longer than a second, silent when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar on stderr (disabled when not interactive)."""
    yield from tqdm(
        items, desc=description, total=total, file=sys.stderr, leave=False,
        disable=not sys.stderr.isatty(), dynamic_ncols=True,
    )
