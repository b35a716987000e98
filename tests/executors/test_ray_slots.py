"""RayPool's bookkeeping for a worker whose actor died, without a Ray instance (the slow tests in
test_ray.py run it on a two-node cluster)."""

from __future__ import annotations

from autorl.executors.ray import RayPool, _Slot
from autorl.executors.workers import Event, EventKind


def test_a_placed_replacement_says_the_death_it_waited_with_and_frees_its_worker() -> None:
    died = Event(EventKind.DIED, 0, 7, "the Ray actor died")
    slot = _Slot(actor=None, pending=None, job=7, placing="ref", died=died)
    assert RayPool._on_placed(slot) == [died]
    assert slot.job is None and slot.placing is None and slot.died is None


def test_a_job_given_to_a_waiting_replacement_is_kept_and_timed_from_its_placement() -> None:
    slot = _Slot(actor=None, pending=None, job=3, started=0.0, placing="ref")  # no death to say
    assert RayPool._on_placed(slot) == []
    assert slot.job == 3 and slot.started > 0.0


def test_a_worker_whose_job_died_is_not_killed_again() -> None:
    pool = RayPool.__new__(RayPool)  # the bookkeeping only: no Ray
    pool._slots = [_Slot(actor=None, pending=None, job=5, died=Event(EventKind.DIED, 0, 5, "died"))]
    pool.kill(0)  # a population's own timeout: its replacement, waiting for a CPU, is left alone
    assert not pool._slots[0].killed
