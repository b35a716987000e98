"""RayPool's bookkeeping for a worker whose actor died, without a Ray instance (the slow tests in
test_ray.py run it on a two-node cluster)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

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


def test_a_reply_lost_with_its_node_is_the_actor_s_death(monkeypatch) -> None:
    """A node removed under a finished job takes the job's reply with its object store: ``ray.get``
    raises ObjectReconstructionFailedError (seen in the two-node test). That is the actor's death, as
    an ActorDiedError is: the actor is killed for certain and a replacement placed, and the death is
    said once it is, not raised out of the sweep."""
    import ray
    from ray.exceptions import ObjectReconstructionFailedError

    class Actor:
        def __init__(self, name: str) -> None:
            self.name = name
            self.ready = type("Call", (), {"remote": staticmethod(lambda: f"{name}-ready")})()

    def get(ref: str) -> Any:
        raise ObjectReconstructionFailedError("ab" * 20)

    killed: list[str] = []
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns=1, timeout=None: (refs[:1], refs[1:]))
    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(ray, "kill", lambda actor, no_restart=True: killed.append(actor.name))
    pool = RayPool.__new__(RayPool)  # the bookkeeping only: no Ray
    pool.sweep = SimpleNamespace(config=SimpleNamespace(ray_place_timeout=5.0))  # type: ignore[assignment]
    pool._slots = [_Slot(actor=Actor("old"), pending="reply", job=4)]
    pool._made_by = {"shard-0": 0}
    pool._start = lambda: _Slot(actor=Actor("new"), pending="new-reply")  # type: ignore[method-assign]
    assert pool.events(timeout=0) == []  # nothing said before the replacement is placed
    new = pool._slots[0]
    assert killed == ["old"] and new.actor.name == "new" and new.placing == "new-ready"
    assert new.job == 4 and pool._made_by == {}  # what the dead actor wrote is not its to ship
    said = Event(EventKind.DIED, 0, 4, "the Ray actor died: ObjectReconstructionFailedError")
    assert new.died == said
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns=1, timeout=None: (["new-ready"], []))
    assert pool.events(timeout=0) == [said]  # placed: the lost job is handled now
    assert new.job is None and new.placing is None
