"""Seeded blocks that leave the caller's random state alone.

Library code never reseeds torch's global generator (a user's run would silently change):
:func:`seeded` runs a block on a fork of it, started from ``seed``, and restores it afterwards.
Draws inside the block equal those after ``torch.manual_seed(seed)`` on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator as if freshly seeded with ``seed``; restore it after.

    >>> state = torch.get_rng_state()
    >>> with seeded(0):
    ...     a = torch.rand(2)
    >>> with seeded(0):
    ...     b = torch.rand(2)
    >>> bool(torch.equal(a, b)), bool(torch.equal(torch.get_rng_state(), state))
    (True, True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(torch.Generator().manual_seed(int(seed)).get_state())
        yield
