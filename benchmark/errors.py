"""Exceptions that the command line turns into one clear message (no traceback)."""
from __future__ import annotations


class BenchmarkError(Exception):
    """Base class: an error the user can act on, printed without a traceback."""


class ConfigError(BenchmarkError):
    """An invalid ``matrix.toml``: names the file and the key, and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file, self.key, self.detail = file, key, message
        where = ", ".join(x for x in (file and f"{file}", key and f"key '{key}'") if x)
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(BenchmarkError):
    """A plugin that cannot be registered or built."""


class MissingWeightsError(BenchmarkError):
    """A weights file that is absent and cannot be downloaded: says which file and where to put it.

    ``key`` is the parameter that names it, when known (a plugin's ``check_params`` sets it; ``validate``
    then reports ``metrics[0].<key>``, or skips an ``optional`` entry).
    """

    def __init__(self, what: str, path: str, hint: str = "", *, key: str | None = None):
        self.what, self.path, self.key = what, path, key
        msg = f"{what}: weights file not found: {path}"
        super().__init__(f"{msg}. {hint}".strip() if hint else msg)


class DataError(BenchmarkError):
    """A dataset or image that cannot be read: names the file."""


class NonFiniteScoreError(BenchmarkError):
    """A metric returned NaN or infinity: names the metric and the images."""
