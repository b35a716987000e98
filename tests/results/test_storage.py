"""Storage: opening a fresh shared database survives another process creating it at the same time."""

import pytest

from autorl.errors import ConfigError


def test_a_schema_race_with_another_process_is_retried(tmp_path, monkeypatch):
    """Two processes opening a fresh database together: Optuna's check-then-create lets one of them
    fail with "table already exists"; make_storage retries and opens the tables the other made."""
    import optuna
    from sqlalchemy import exc

    from autorl.results import storage as st

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kw):
        calls.append(url)
        if len(calls) == 1:
            real(url, **kw)  # "the other process" creates the schema ...
            raise exc.OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists"))
        return real(url, **kw)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage = st.make_storage(f"sqlite:///{tmp_path / 'db.sqlite'}", shared=True)
    assert len(calls) == 2 and storage.get_all_studies() == []

    def broken(url, **kw):
        raise exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    with pytest.raises(ConfigError, match="disk I/O error"):  # other errors are not retried
        st.make_storage(f"sqlite:///{tmp_path / 'other.sqlite'}")


def test_a_journal_cut_off_mid_line_is_repaired_before_it_is_appended_to(tmp_path):
    """A write cut off (power loss, full disk) leaves half a line; appending after it would make the
    whole journal unreadable. make_storage cuts it, keeping every complete record."""
    import optuna

    from autorl.results import storage as st

    path = tmp_path / "study.log"
    study = optuna.create_study(study_name="s", storage=st.make_storage(f"journal:{path}"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with open(path, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "x", "trial_id": 9, "param')  # half a record
    study = optuna.load_study(study_name="s", storage=st.make_storage(f"journal:{path}"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(study_name="s", storage=st.make_storage(f"journal:{path}"))
    assert len(again.trials) == 5 and all(t.state.name == "COMPLETE" for t in again.trials)
