"""The race as the study records it: which trials are race blocks, the standing, the incumbent.

A race block is an ordinary Optuna trial with its configuration's parameters and two user attributes,
:data:`RACE_OF` (the configuration's first trial) and :data:`RACE_BLOCK`; the samplers learn from it as
from any trial, and trials.csv shows it as it ends. :mod:`autorl.methods.race` decides; this module
reads the study into its terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial, Trial, TrialState

from autorl.methods.race import Estimate, Evaluation, Standing, estimate, standing
from autorl.results.record import RACE_BLOCK, RACE_OF, record_of, retried, was_interrupted


def race_key(trial: FrozenTrial | Trial) -> tuple[int, int] | None:
    """``(configuration, block)`` of a race block; None for a tuning trial."""
    if RACE_OF not in trial.user_attrs:
        return None
    return int(trial.user_attrs[RACE_OF]), int(trial.user_attrs[RACE_BLOCK])


def evaluation(
    number: int, key: tuple[int, int] | None, values: Sequence[float] | None, maximize: bool
) -> Evaluation:
    """Trial ``number``'s evaluation: a tuning trial (``key`` None) enters its configuration with its
    value, a race block ``key`` scores its configuration; a block without values (failed) scores -inf."""
    config, block = key if key is not None else (number, 0)
    score = (values[0] if maximize else -values[0]) if values else -math.inf
    return Evaluation(config, block, score)


def evaluation_of(trial: FrozenTrial, maximize: bool) -> Evaluation | None:
    """What ``trial`` tells the race: a completed tuning trial enters its configuration, a finished race
    block scores it (a failed one -inf). Running, pruned and interrupted trials tell nothing."""
    key = race_key(trial)
    if trial.state == TrialState.COMPLETE and trial.values:
        return evaluation(trial.number, key, trial.values, maximize)
    if key is not None and trial.state == TrialState.FAIL and not was_interrupted(trial):
        return evaluation(trial.number, key, None, maximize)
    return None


def race_evaluations(trials: Sequence[FrozenTrial], maximize: bool) -> list[tuple[FrozenTrial, Evaluation]]:
    """What ``trials`` tell the race, each with its trial; a trial whose config was queued again (its
    retry stands for it) tells nothing."""
    again = retried(trials)
    found = ((t, evaluation_of(t, maximize)) for t in trials if t.number not in again)
    return [(t, e) for t, e in found if e is not None]


def race_standing(trials: Sequence[FrozenTrial], maximize: bool) -> Standing:
    """The race's standing after ``trials``."""
    return standing(e for _, e in race_evaluations(trials, maximize))


def race_estimate(s: Standing, config: int, maximize: bool) -> Estimate:
    """``config``'s race blocks in block order, in the user's sign, with mean, IQM and CI."""
    sign = 1.0 if maximize else -1.0
    return estimate(sign * v for _, v in sorted(s.blocks.get(config, {}).items()))


def incumbent(trials: Sequence[FrozenTrial], maximize: bool, raced: bool) -> tuple[FrozenTrial | None, float]:
    """The sweep's incumbent trial and the value it is judged by.

    Without racing: the best completed trial and its value. Racing: the race's incumbent (its first trial)
    and its mean on the race blocks; before any block has finished, the best tuning trial.
    """
    sign = 1.0 if maximize else -1.0
    tuning = [t for t in trials if t.state == TrialState.COMPLETE and t.values and race_key(t) is None]
    if raced:
        s = race_standing(trials, maximize)
        if s.incumbent is not None:
            first = next(t for t in trials if t.number == s.incumbent)
            return first, sign * s.mean(s.incumbent)
    best = max(tuning, key=lambda t: sign * t.values[0], default=None)
    return best, (best.values[0] if best is not None else math.nan)


def race_columns(trials: Sequence[FrozenTrial], maximize: bool) -> dict[int, dict[str, Any]]:
    """trials.csv's race columns by trial number: ``race_of``/``race_block`` for a block, and for a raced
    configuration's first trial its ``race_seeds`` (blocks finished) and ``race_mean`` so far."""
    s = race_standing(trials, maximize)
    sign = 1.0 if maximize else -1.0
    out: dict[int, dict[str, Any]] = {}
    for t in trials:
        key = race_key(t)
        if key is not None:
            out[t.number] = {RACE_OF: key[0], RACE_BLOCK: key[1]}
        elif t.number in s.blocks:
            out[t.number] = {"race_seeds": len(s.blocks[t.number]), "race_mean": sign * s.mean(t.number)}
    if s.incumbent is not None:
        out.setdefault(s.incumbent, {})["incumbent"] = True
    return out


def race_report(trials: Sequence[FrozenTrial], maximize: bool, seeds_of: Any) -> dict[str, Any] | None:
    """best.yaml's ``race`` entry: the incumbent's race seeds, values, mean, IQM and 95% CI, and how much of
    the sweep the race took. ``seeds_of(block)`` gives a block's seeds."""
    s = race_standing(trials, maximize)
    if s.incumbent is None:
        return None
    est = race_estimate(s, s.incumbent, maximize)
    blocks = sorted(s.blocks[s.incumbent])
    raced = [t for t in trials if race_key(t) is not None and t.state.is_finished()]
    return {
        "seeds": [seed for b in blocks for seed in seeds_of(b)],
        "values": list(est.values),
        "mean": est.mean,
        "iqm": est.iqm,
        "ci95": list(est.ci95),
        "tuning_value": sign_back(s.tuning.get(s.incumbent, math.nan), maximize),
        "raced_trials": len(raced),
        "raced_budget": sum(record_of(t).budget for t in raced if not was_interrupted(t)),
    }


def sign_back(score: float, maximize: bool) -> float:
    """A score (larger is better) in the user's sign."""
    return score if maximize else -score
