"""The race read off a study's trials, in both directions."""

from __future__ import annotations

import math

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from autorl.results.race import incumbent, race_columns, race_standing
from autorl.results.record import ATTR, RACE_BLOCK, RACE_OF


def _trial(
    number: int, value: float | None, race: tuple[int, int] | None = None, failed: bool = False
) -> optuna.trial.FrozenTrial:
    attrs = {ATTR: {}} if race is None else {RACE_OF: race[0], RACE_BLOCK: race[1], ATTR: {}}
    t = create_trial(
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        value=None if failed else value,
        state=TrialState.FAIL if failed else TrialState.COMPLETE,
        user_attrs=attrs,
    )
    t.number = number
    return t


def test_a_minimised_race_names_the_lowest_mean_and_a_failed_block_loses() -> None:
    # losses: trial 0 looked best on its tuning seed (0.1) but its race blocks average 0.9
    trials = [
        _trial(0, 0.1),
        _trial(1, 0.3),
        _trial(2, 0.9, race=(0, 1)),
        _trial(3, 0.9, race=(0, 2)),
        _trial(4, 0.4, race=(1, 1)),
        _trial(5, 0.5, race=(1, 2)),
    ]
    best, value = incumbent(trials, maximize=False, raced=True)
    assert best is not None and best.number == 1 and math.isclose(value, 0.45)
    plain, single = incumbent(trials, maximize=False, raced=False)  # race blocks are no candidates
    assert plain is not None and plain.number == 0 and single == 0.1
    cols = race_columns(trials, maximize=False)
    assert cols[1] == {"race_seeds": 2, "race_mean": 0.45, "incumbent": True}
    assert cols[2] == {RACE_OF: 0, RACE_BLOCK: 1}
    s = race_standing([*trials, _trial(6, None, race=(1, 3), failed=True)], maximize=False)
    assert s.blocks[1][3] == -math.inf and s.mean(1) == -math.inf
    assert s.incumbent == 0  # a configuration that failed on a fresh seed is not named
