"""``epoch_intervals``: which epochs a trace records.

Epochs are counted from 1 (the first pass over the training data). Epoch 0 (``E_0``) is the
untrained network; it is always recorded, because every analysis compares against it.

The seed project's semantics, exactly:

* ``None`` — every epoch;
* ``n > 0`` — every n-th epoch (n, 2n, ...) and the last one;
* ``-1`` — the last epoch only;
* a list (or tuple) of positive epoch numbers — those epochs.

Anything else raises :class:`ValueError` naming the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

EpochIntervals: TypeAlias = int | Sequence[int] | None

__all__ = [
    "EpochIntervals",
    "checked_points",
    "normalize_epoch_intervals",
    "recorded_epochs",
    "should_record",
]


def _is_int(value: object) -> bool:
    # bool is an int subclass; True as an interval is a bug, not "every epoch".
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_epoch_intervals(value: object) -> int | tuple[int, ...] | None:
    """Validate ``epoch_intervals`` and return its canonical form.

    Returns ``None``, a positive int, ``-1`` or a sorted tuple of distinct positive ints.

    >>> normalize_epoch_intervals([10, 1, 5])
    (1, 5, 10)
    >>> normalize_epoch_intervals(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: epoch_intervals=0 is not valid: use None (every epoch), ...
    """
    hint = (
        "use None (every epoch), n > 0 (every n-th epoch and the last), -1 (the last epoch "
        "only) or a list of positive epoch numbers"
    )
    if value is None:
        return None
    if _is_int(value):
        if value > 0 or value == -1:
            return int(value)
        raise ValueError(f"epoch_intervals={value!r} is not valid: {hint}")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"epoch_intervals={value!r} is not valid: {hint}")
    return checked_points(value, "epoch_intervals", "epoch", hint)


def checked_points(value: Iterable[object], field: str, unit: str, hint: str) -> tuple[int, ...]:
    """A list of epochs (or steps) as a sorted tuple of distinct positive ints; a
    :class:`ValueError` naming ``field`` and the value otherwise (``hint``: what is valid)."""
    items = list(value)
    if not items:
        raise ValueError(f"{field}={value!r} is an empty list: {hint}")
    bad = [item for item in items if not _is_int(item) or item < 1]  # type: ignore[operator]
    if bad:
        raise ValueError(
            f"{field}={value!r} is not valid: {bad[0]!r} is not a positive {unit} number"
        )
    if len(set(items)) != len(items):
        article = "an" if unit[0] in "aeiou" else "a"
        raise ValueError(f"{field}={value!r} lists {article} {unit} more than once")
    return tuple(sorted(int(item) for item in items))  # type: ignore[call-overload]


def should_record(epoch: int, epoch_intervals: EpochIntervals, num_epochs: int | None) -> bool:
    """Whether ``epoch`` (1-based; 0 is the untrained network) is recorded.

    ``num_epochs`` is needed to know the last epoch for ``n > 0`` and ``-1``; when it is
    ``None`` the last epoch is not known here and only the regular epochs are reported.
    """
    intervals = normalize_epoch_intervals(epoch_intervals)
    if epoch == 0:
        return True
    if epoch < 0:
        return False
    is_last = num_epochs is not None and epoch == num_epochs
    if intervals is None:
        return True
    if intervals == -1:
        return is_last
    if isinstance(intervals, int):
        return epoch % intervals == 0 or is_last
    return epoch in intervals


def recorded_epochs(epoch_intervals: EpochIntervals, num_epochs: int) -> list[int]:
    """Every epoch that a run of ``num_epochs`` epochs records, ``0`` first.

    >>> recorded_epochs(5, 12)
    [0, 5, 10, 12]
    >>> recorded_epochs(-1, 12)
    [0, 12]
    """
    if not _is_int(num_epochs) or num_epochs < 0:
        raise ValueError(f"num_epochs={num_epochs!r} must be a non-negative integer")
    intervals = normalize_epoch_intervals(epoch_intervals)
    if isinstance(intervals, tuple):
        beyond = [e for e in intervals if e > num_epochs]
        if beyond:
            raise ValueError(
                f"epoch_intervals lists epoch {beyond[0]} but the run has only {num_epochs} epochs"
            )
    return [e for e in range(num_epochs + 1) if should_record(e, intervals, num_epochs)]
