"""Errors that autorl raises on bad input, each naming the file, the key and the rule broken."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value breaks a rule.

    The message reads ``FILE: KEY: RULE`` so the user can find and fix it without a traceback.
    """

    def __init__(self, rule: str, key: str | None = None, file: str | None = None) -> None:
        self.rule = rule
        self.key = key
        self.file = file
        super().__init__(self._format())

    def _format(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.rule])

    def at(self, key: str | None = None, file: str | None = None) -> ConfigError:
        """Return a copy located at ``key`` (prefixed to any inner key) in ``file``."""
        full_key = ".".join(k for k in (key, self.key) if k) or None
        return ConfigError(self.rule, full_key, file or self.file)


class TrialPruned(Exception):
    """Raised inside a trial when the method decides to stop it early."""


class TrialDiverged(RuntimeError):
    """A trial produced a non-finite metric (NaN or infinity)."""
