"""Storage URLs: checked before anything runs, and never written or printed with their password."""

from __future__ import annotations

import urllib.parse

from autorl.errors import ConfigError

STORAGE_ENV = "AUTORL_STORAGE"  # the storage URL when neither --storage nor `storage:` gives one
# the package that provides a missing database driver module
DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (what autorl writes or prints of a storage URL)."""
    if url.startswith("journal:") or "://" not in url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://", 1)[0] + "://***"


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message, say) with the password of ``url`` replaced by ``***``."""
    password = _password(url)
    if not password:
        return text
    for form in {password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)}:
        text = text.replace(form, "***")
    return text


def _password(url: str) -> str | None:
    if "://" not in url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password  # type: ignore[return-value]
    except ArgumentError:
        return None


def check_storage_url(url: str) -> None:
    """Refuse a storage URL that cannot work here: bad syntax, an unknown database, a missing driver."""
    if url.startswith("journal:"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
        dialect.import_dbapi()
    except ArgumentError:
        raise ConfigError(
            f"{redact(url)!r} is not a storage URL: use an SQLAlchemy URL (sqlite:///path.db, "
            "postgresql://user@host/db) or journal:PATH",
            "storage",
        ) from None
    except NoSuchModuleError as exc:
        raise ConfigError(f"unknown database in {redact(url)!r}: {exc}", "storage") from None
    except ModuleNotFoundError as exc:
        name = exc.name or str(exc)
        raise ConfigError(
            f"the database driver {name!r} for {redact(url)!r} is not installed: "
            f"pip install '{DRIVERS.get(name, name)}'",
            "storage",
        ) from None
