"""A stop request that remembers where training was when it arrived.

:func:`~nn_tracing.training.train` takes a ``stop`` signal and checks it after every batch. A
:class:`StopRequest` is such a signal (a callable returning whether a stop was asked for) that
the training loop also tells where it is (``position``: the epoch and the batches done in it),
so that the moment a stop was asked for is recorded next to the moment training stopped
(``meta["stop_requested_at"]`` and ``meta["stopped_epoch"]`` / ``meta["stopped_step"]``):
proof that a stop takes effect within one batch.

It is safe to :meth:`~StopRequest.set` from a signal handler: no lock is taken (a
``threading.Event`` takes one, and a second signal arriving inside the first handler's
``set`` would wait on it forever). Nothing here imports torch.
"""

from __future__ import annotations

__all__ = ["StopRequest"]


class StopRequest:
    """A flag that ends training after the current batch, and where training was when set.

    ``position`` is ``(epoch, batches done in that epoch)``, kept up to date by the training
    loop after every batch (``(0, 0)`` before the first). ``requested_at`` is the position at
    the first :meth:`set` (``None`` until then).

    >>> stop = StopRequest()
    >>> stop.position = (3, 12)
    >>> stop.set()
    >>> stop(), stop.requested_at
    (True, (3, 12))
    """

    def __init__(self) -> None:
        self.position: tuple[int, int] = (0, 0)
        self.requested_at: tuple[int, int] | None = None
        self._set = False

    def set(self) -> None:
        """Ask training to stop after the current batch (the first call records where)."""
        if not self._set:
            self.requested_at = self.position
            self._set = True

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._set

    def __call__(self) -> bool:
        return self._set

    def requested_meta(self) -> dict[str, int] | None:
        """``{"epoch": e, "step": s}`` where the stop was asked for, or ``None``."""
        if self.requested_at is None:
            return None
        epoch, step = self.requested_at
        return {"epoch": epoch, "step": step}
