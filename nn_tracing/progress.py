"""The one progress callback of the library: ``progress(fraction, message)``.

Every slow analysis takes a ``progress`` argument — in ``fit(..., progress=...)`` for an
estimator (never stored on it, so a fitted estimator pickles and caches without a callback),
or as a keyword of a function — and calls it with the fraction done, in ``[0, 1]``, and a
sentence saying what it is doing. The app's progress bars and any script's own reporting plug in
unchanged.

Training reports richer snapshots (epoch, step, loss, time left):
:class:`nn_tracing.training.TrainingProgress`, a different thing.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "fraction", "no_progress", "reporter"]

#: ``progress(fraction in [0, 1], what is being done)``.
Progress = Callable[[float, str], None]


def fraction(done: int, total: int) -> float:
    """``done / total`` as the fraction a :data:`Progress` callback takes (0 when ``total`` is 0).

    >>> fraction(3, 4)
    0.75
    >>> fraction(0, 0)
    0.0
    """
    return done / total if total else 0.0


def no_progress(fraction: float, message: str) -> None:
    """A :data:`Progress` callback that reports nowhere (the default of ``progress=None``)."""


def reporter(progress: Progress | None, total: int) -> Callable[[int, str], None]:
    """``report(done, what)`` for work counted in steps: calls
    ``progress(fraction(done, total), what)``, or nothing when ``progress`` is ``None``.

    >>> seen = []
    >>> report = reporter(lambda f, what: seen.append((f, what)), 4)
    >>> report(1, "first of four")
    >>> seen
    [(0.25, 'first of four')]
    """

    def report(done: int, what: str) -> None:
        if progress is not None:
            progress(fraction(done, total), what)

    return report
