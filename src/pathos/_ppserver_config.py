"""pathos 0.3.5's default server lists for Parallel Python (kept for old imports).

Our ``ParallelPool`` takes its servers from ``servers=``; these stay empty.
"""

from __future__ import annotations

ppservers: tuple[str, ...] = ()
tunnelports: list[int] = []
