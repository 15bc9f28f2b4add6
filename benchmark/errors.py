"""Exceptions that the command line turns into one clear message (no traceback)."""
from __future__ import annotations

import errno
import tempfile


class BenchmarkError(Exception):
    """Base class: an error the user can act on, printed without a traceback."""


class ConfigError(BenchmarkError):
    """An invalid ``matrix.toml``: names the file and the key, and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file, self.key, self.detail = file, key, message
        where = ", ".join(x for x in (file and f"{file}", key and f"key '{key}'") if x)
        super().__init__(f"{where}: {message}" if where else message)


class ErrorList(BenchmarkError):
    """Several independent user errors found in one pass (``validate`` reports them all): ``errors``, one
    line each in the message. Nested lists are flattened; ``file``/``key``/``detail`` are the first error's."""

    def __init__(self, errors: list[BenchmarkError]):
        flat = [x for e in errors for x in (e.errors if isinstance(e, ErrorList) else [e])]
        if not flat:
            raise ValueError("ErrorList needs at least one error")
        self.errors = flat
        first = flat[0]
        self.file, self.key = getattr(first, "file", None), getattr(first, "key", None)
        self.detail = getattr(first, "detail", str(first))
        Exception.__init__(self, "\n".join(str(e) for e in flat))


class ConfigErrors(ErrorList, ConfigError):
    """Every error of a config found by one ``validate``."""


class PluginError(BenchmarkError):
    """A plugin that cannot be registered or built."""


class MissingWeightsError(BenchmarkError):
    """A weights file that is absent and cannot be downloaded: says which file and where to put it.

    ``key`` is the parameter that names it, when known (a plugin's ``check_params`` sets it; ``validate``
    then reports ``metrics[0].<key>``, or skips an ``optional`` entry).
    """

    def __init__(self, what: str, path: str, hint: str = "", *, key: str | None = None):
        self.what, self.path, self.key, self.hint = what, path, key, hint
        import os

        # raised by a loader that found the file but could not read it: never call that file "not found"
        msg = f"{what}: {'weights file not readable' if os.path.exists(path) else 'weights file not found'}: {path}"
        super().__init__(f"{msg}. {hint}".strip() if hint else msg)


class DataError(BenchmarkError):
    """A dataset or image that cannot be read: names the file."""


class DataErrors(ErrorList, DataError):
    """Every problem of a dataset's files found in one pass (rows of a MOS table, absent images)."""


class NonFiniteScoreError(BenchmarkError):
    """A metric returned NaN or infinity: names the metric and the images."""


EXIT_STOPPED = 3  # the command line's exit status after a :class:`RunStopped` (0 done, 1 cells failed, 2 user error)
STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}  # a full, limited or failing disk


class RunStopped(BenchmarkError):
    """A failure of the machine, not of the config or of one stage (the disk full, a write refused, the device
    lost): it ends the run at once instead of failing every stage after it. The command line prints one line
    naming the file or device, saying that finished stages are kept and ``--resume`` continues, and exits with
    :data:`EXIT_STOPPED`."""


class WriteError(RunStopped, OSError):
    """A file could not be written (disk full, quota, file size limit, read-only, I/O error): names the file.
    Also an ``OSError`` (its ``errno``, ``strerror``, ``filename``), so a caller that may skip a write (a cache)
    still catches it as one."""

    def __init__(self, path, exc: OSError):
        OSError.__init__(self, exc.errno, exc.strerror or str(exc), str(path))
        self.message = f"cannot write {path}: {exc.strerror or exc}"

    def __str__(self) -> str:
        return self.message


def run_stopping(exc: BaseException) -> RunStopped | None:
    """``exc`` as a :class:`RunStopped` when it is a failure of the machine rather than of a stage: itself, an
    ``OSError`` of a full or failing disk (:data:`STOP_ERRNOS`), or a lost or failed accelerator (torch's
    ``AcceleratorError``, a "CUDA error" other than running out of memory); else None."""
    cause = getattr(exc, "cause", None)  # a Ray task's error wraps the worker's own
    if isinstance(cause, BaseException) and cause is not exc and (stop := run_stopping(cause)) is not None:
        return stop
    if isinstance(exc, RunStopped):
        return exc
    if isinstance(exc, OSError) and exc.errno in STOP_ERRNOS:
        where = exc.filename or f"a temporary file in {tempfile.gettempdir()} (TMPDIR)"
        return WriteError(where, exc)
    text = str(exc)
    accelerator = any(c.__name__ == "AcceleratorError" for c in type(exc).__mro__)
    if accelerator or (isinstance(exc, RuntimeError) and ("CUDA error" in text or "CUDA driver" in text)
                       and "out of memory" not in text):
        return RunStopped(f"the device failed: {text.strip().splitlines()[0] if text.strip() else type(exc).__name__}")
    return None
