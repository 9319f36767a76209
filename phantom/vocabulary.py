"""A vocabulary: a ``str`` enum whose value is its name in sweep files, configs, records and SQL
(so equality, hashing, JSON and every trial id are those of the plain string). Parsing a name
the vocabulary lacks is one ConfigError with a suggestion and the names available; each
vocabulary words it (:meth:`Vocabulary.unknown`)."""

from __future__ import annotations

import enum

from phantom.errors import ConfigError


class Vocabulary(str, enum.Enum):
    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object, where: str = ""):
        """The word named ``value`` (a word of the vocabulary passes through), or a ConfigError
        (``where``: what the value was, e.g. `` in `protocols` ``)."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(cls.unknown(str(value), [m.value for m in cls], where)) from None

    @classmethod
    def unknown(cls, value: str, names: list[str], where: str) -> str:
        """The message for a name the vocabulary lacks."""
        raise NotImplementedError  # pragma: no cover - every vocabulary words its own
