"""``step_intervals``: which optimizer steps a step-axis trace records.

A step is one optimizer update; steps are counted from 1 and step 0 (``S_0``) is the untrained
network, always recorded. With full-batch training a step is an epoch; with mini-batches there
are ``ceil(n_train / batch_size)`` steps per epoch.

The forms (canonical values in brackets, as :func:`normalize_step_intervals` returns them):

* ``n > 0`` [``n``] — every n-th step (n, 2n, …) and the last;
* ``-1`` [``-1``] — the last step only;
* a list of positive step numbers [a sorted tuple] — those steps;
* ``"log"`` [``"log"``] — log-spaced: 1, 2, 4, 8, … (every power of two) and the last;
* ``"log:N"`` (or ``("log", N)``) [``"log:N"``] — log-spaced below N, then every N-th step
  (N, 2N, …) and the last, like the Pythia checkpoints (0, 1, 2, 4, …, 512, then every 1000).

Anything else raises :class:`ValueError` naming the value. ``None`` means "not a step
schedule": the trace counts epochs (:mod:`nn_tracing.schedule`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias

from .schedule import checked_points

StepIntervals: TypeAlias = int | Sequence[int] | str | None

__all__ = [
    "MAX_RECORDED_STEPS",
    "StepIntervals",
    "checked_step_schedule",
    "format_step_spec",
    "normalize_step_intervals",
    "parse_step_spec",
    "recorded_steps",
    "should_record_step",
    "step_predicate",
    "step_schedule_text",
]

#: A step schedule that would record more steps than this is refused by :func:`recorded_steps`
#: (a trace holds at most 20 000 files; each recorded step is one or two).
MAX_RECORDED_STEPS = 5_000

_HINT = (
    "use n > 0 (every n-th step and the last), -1 (the last step only), a list of positive "
    "step numbers, 'log' (steps 1, 2, 4, 8, …) or 'log:N' (log-spaced below N, then every N-th)"
)
_LOG = re.compile(r"log(?::([0-9]{1,9}))?")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _log_spec(value: object) -> str | None:
    """``"log"`` / ``"log:N"`` from a string or a ``("log", N)`` pair; ``None`` if not one."""
    if isinstance(value, str):
        match = _LOG.fullmatch(value.strip().lower())
        if match is None:
            raise ValueError(f"step_intervals={value!r} is not valid: {_HINT}")
        every = match.group(1)
        if every is None:
            return "log"
        if int(every) < 1:
            raise ValueError(f"step_intervals={value!r}: the N of 'log:N' must be positive")
        return f"log:{int(every)}"
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and value[0] == "log"
        and _is_int(value[1])
    ):
        return _log_spec(f"log:{value[1]}")
    return None


def normalize_step_intervals(value: object) -> int | tuple[int, ...] | str | None:
    """Validate ``step_intervals`` and return its canonical form (``None`` stays ``None``).

    >>> normalize_step_intervals("LOG:100")
    'log:100'
    >>> normalize_step_intervals([300, 10, 20])
    (10, 20, 300)
    >>> normalize_step_intervals(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: step_intervals=0 is not valid: use n > 0 ...
    """
    if value is None:
        return None
    if _is_int(value):
        if value > 0 or value == -1:
            return int(value)
        raise ValueError(f"step_intervals={value!r} is not valid: {_HINT}")
    log = _log_spec(value)
    if log is not None:
        return log
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise ValueError(f"step_intervals={value!r} is not valid: {_HINT}")
    return checked_points(value, "step_intervals", "step", _HINT)


def _is_power_of_two(step: int) -> bool:
    return step > 0 and step & (step - 1) == 0


def should_record_step(step: int, step_intervals: StepIntervals, num_steps: int | None) -> bool:
    """Whether ``step`` (0 is the untrained network) is recorded.

    ``num_steps`` (the run's length) tells which step is the last; when it is ``None`` only
    the regular steps are reported here (:class:`~nn_tracing.tracer.TraceableNN` records the
    last one at ``finish``). A loop asking at every step builds :func:`step_predicate` once.
    """
    return step_predicate(step_intervals, num_steps)(step)


def step_predicate(step_intervals: StepIntervals, num_steps: int | None) -> Callable[[int], bool]:
    """:func:`should_record_step` for one schedule, validated once: the tracer asks it after
    every optimizer step (an explicit list becomes a set)."""
    spec = normalize_step_intervals(step_intervals)
    if spec is None:
        raise ValueError("should_record_step needs a step schedule, not None")
    listed = frozenset(spec) if isinstance(spec, tuple) else frozenset()
    every = int(spec[4:]) if isinstance(spec, str) and spec.startswith("log:") else None

    def scheduled(step: int) -> bool:
        if isinstance(spec, tuple):
            return step in listed
        if isinstance(spec, int):
            return spec != -1 and step % spec == 0
        if every is None:  # "log"
            return _is_power_of_two(step)
        return (step < every and _is_power_of_two(step)) or step % every == 0

    ends = num_steps is not None and not listed  # a list records only what it lists

    def records(step: int) -> bool:
        if step <= 0:
            return step == 0
        return scheduled(step) or (ends and step == num_steps)

    return records


def recorded_steps(step_intervals: StepIntervals, num_steps: int) -> list[int]:
    """Every step that a run of ``num_steps`` steps records, ``0`` first.

    >>> recorded_steps("log:8", 30)
    [0, 1, 2, 4, 8, 16, 24, 30]
    >>> recorded_steps("log", 20)
    [0, 1, 2, 4, 8, 16, 20]
    """
    if not _is_int(num_steps) or num_steps < 0:
        raise ValueError(f"num_steps={num_steps!r} must be a non-negative integer")
    spec = normalize_step_intervals(step_intervals)
    if isinstance(spec, tuple) and spec[-1] > num_steps:
        raise ValueError(
            f"step_intervals lists step {spec[-1]} but the run has only {num_steps} steps"
        )
    steps = [0]
    steps.extend(_candidates(spec, num_steps))
    if num_steps > 0 and spec != -1 and not isinstance(spec, tuple):
        steps.append(num_steps)
    if spec == -1 and num_steps > 0:
        steps.append(num_steps)
    out = sorted(set(steps))
    if len(out) > MAX_RECORDED_STEPS:
        raise ValueError(
            f"step_intervals={step_intervals!r} records {len(out)} of {num_steps} steps, over "
            f"the limit of {MAX_RECORDED_STEPS}: record every n-th step with a larger n"
        )
    return out


def _candidates(spec: int | tuple[int, ...] | str, num_steps: int) -> Iterable[int]:
    """The scheduled steps in ``1..num_steps`` (without the last), without a loop over every
    step: a schedule of a million steps is listed at the cost of what it records."""
    if isinstance(spec, tuple):
        return spec
    if spec == -1:
        return ()
    if isinstance(spec, int):
        return range(spec, num_steps + 1, spec)
    every = int(spec[4:]) if spec.startswith("log:") else None
    limit = num_steps if every is None else min(num_steps, every - 1)
    powers = []
    power = 1
    while power <= limit:
        powers.append(power)
        power *= 2
    regular = range(every, num_steps + 1, every) if every is not None else range(0)
    return [*powers, *regular]


def step_schedule_text(step_intervals: StepIntervals) -> str:
    """A short description for people: ``"log-spaced, then every 25 steps"``."""
    spec = normalize_step_intervals(step_intervals)
    if spec is None:
        return "not a step schedule"
    if spec == -1:
        return "the last step only"
    if isinstance(spec, int):
        return f"every {spec} steps and the last"
    if isinstance(spec, tuple):
        shown = ", ".join(str(s) for s in spec[:6]) + (", …" if len(spec) > 6 else "")
        return f"steps {shown}"
    if spec == "log":
        return "log-spaced steps (1, 2, 4, 8, …) and the last"
    return f"log-spaced below {spec[4:]}, then every {spec[4:]} steps and the last"


def checked_step_schedule(
    step_intervals: StepIntervals,
    epoch_intervals: object,
    num_steps: int | None,
    *,
    has_probe: bool,
) -> int | tuple[int, ...] | str | None:
    """The normalised step schedule of a :class:`~nn_tracing.tracer.TraceableNN` (``None``:
    none); ``ValueError`` when it cannot work with the other arguments."""
    steps = normalize_step_intervals(step_intervals)
    if steps is None:
        if num_steps is not None:
            raise ValueError("num_steps= is the length of a step schedule: give step_intervals=")
        return None
    if epoch_intervals is not None:
        raise ValueError(
            "give epoch_intervals= or step_intervals=, not both: a trace counts either epochs "
            "or steps"
        )
    if not has_probe:
        raise ValueError(
            "step_intervals= needs a probe: a recorded step is measured on the probe set "
            "(without one, statistics stream over a whole epoch's batches)"
        )
    if num_steps is not None and (
        not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1
    ):
        raise ValueError(f"num_steps={num_steps!r} must be a positive integer")
    if isinstance(steps, tuple) and num_steps is not None and steps[-1] > num_steps:
        raise ValueError(f"step_intervals lists step {steps[-1]} but num_steps={num_steps}")
    return steps


def parse_step_spec(text: str) -> int | tuple[int, ...] | str:
    """A schedule typed by a person (``--step-intervals``, the sidebar form) in its canonical
    form: ``"25"``, ``"log"``, ``"log:25"``, ``"10, 100, 1000"`` or ``"last"``.

    >>> parse_step_spec("10, 100"), parse_step_spec("last"), parse_step_spec("Log:25")
    ((10, 100), -1, 'log:25')
    """
    spec = str(text).strip().lower()
    if spec == "last":
        return -1
    if spec.startswith("log"):
        return normalize_step_intervals(spec)  # type: ignore[return-value]
    parts = [part for part in re.split(r"[,\s;]+", spec) if part]
    try:
        steps = [int(part) for part in parts]
    except ValueError:
        steps = []
    if not steps:
        raise ValueError(f"{text!r}: use N, log, log:N, a list like 10, 100, 1000, or last")
    value: int | list[int] = steps[0] if len(parts) == 1 else steps
    return normalize_step_intervals(value)  # type: ignore[return-value]


def format_step_spec(step_intervals: StepIntervals) -> str:
    """The text :func:`parse_step_spec` reads back: ``"log:25"``, ``"10, 100"``, ``"last"``."""
    spec = normalize_step_intervals(step_intervals)
    if spec is None:
        return ""
    if spec == -1:
        return "last"
    if isinstance(spec, tuple):
        return ", ".join(str(step) for step in spec)
    return str(spec)
