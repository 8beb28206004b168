"""epoch_intervals semantics (None: every epoch; n > 0: every n-th and the last; -1: the last
only; a list: those epochs) and every invalid form."""

import pytest

from nn_tracing.schedule import normalize_epoch_intervals, recorded_epochs, should_record


@pytest.mark.parametrize(
    ("intervals", "epochs", "expected"),
    [
        (None, 5, [0, 1, 2, 3, 4, 5]),
        (1, 3, [0, 1, 2, 3]),
        (5, 12, [0, 5, 10, 12]),
        (5, 10, [0, 5, 10]),
        (20, 7, [0, 7]),
        (-1, 12, [0, 12]),
        ([1, 5, 10], 12, [0, 1, 5, 10]),
        ((10, 1), 10, [0, 1, 10]),
        ([3], 3, [0, 3]),
    ],
)
def test_recorded_epochs_follow_the_seed_semantics(intervals, epochs, expected):
    assert recorded_epochs(intervals, epochs) == expected


def test_epoch_zero_is_always_recorded():
    for intervals in (None, 3, -1, [2]):
        assert should_record(0, intervals, 10)


def test_without_a_known_end_only_regular_epochs_are_reported():
    assert [e for e in range(1, 8) if should_record(e, 3, None)] == [3, 6]
    assert not any(should_record(e, -1, None) for e in range(1, 8))


@pytest.mark.parametrize(
    "bad",
    [
        0,
        -2,
        -100,
        1.5,
        "5",
        b"5",
        True,
        False,
        [],
        [0],
        [1, -1],
        [1, 1],
        [1.0],
        ["1"],
        {"a": 1},
        object(),
    ],
)
def test_invalid_intervals_raise_value_error_naming_the_value(bad):
    with pytest.raises(ValueError, match="epoch_intervals"):
        normalize_epoch_intervals(bad)


def test_list_epochs_beyond_the_run_are_rejected():
    with pytest.raises(ValueError, match="epoch 50"):
        recorded_epochs([1, 50], 10)


def test_normalized_list_is_a_sorted_tuple():
    assert normalize_epoch_intervals([10, 1, 5]) == (1, 5, 10)
    assert normalize_epoch_intervals(None) is None
    assert normalize_epoch_intervals(-1) == -1
