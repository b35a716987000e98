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
