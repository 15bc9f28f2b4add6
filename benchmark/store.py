"""The run directory: manifest, per-stage records keyed by content hash, atomic writes.

Layout::

    <run>/manifest.json              config, resolved plugin parameters, versions, device, seeds
    <run>/stages/<kind>/<key>.json   one finished stage: its spec and per-image records
    <run>/stages/attack/<key>/       the attack stage's attacked images, one file each (8-bit PNG by
                                     default; :mod:`benchmark.attacked`), written before its .json
    <run>/errors/<key>.json          a failed stage: its spec and the error
    <run>/records.csv, summary.csv, summary.md, report.html   derived; re-rendered by ``report``
    <run>/cache/                     derived, kept between ``report`` calls (:mod:`benchmark.reports.summaries`)
    <run>/.lock                      the writer's advisory lock, with its pid, host and start time

A stage is complete when its ``.json`` exists; every file is written to a temporary name and renamed,
so an interrupted run never leaves a half-written record. Seeds derive from the key (sha256). Files are
created with mode 0666 less the umask (0644 under the usual umask 022), as ``open()`` would: results are
meant to be shared.

A run directory is recognisable by its manifest's ``"tool"`` field (:func:`is_run_dir`); ``--overwrite``
removes nothing else. While a run writes into it, it holds an advisory lock (``flock``) on
``<run>/.lock`` (:class:`RunLock`) with the holder's pid, host and start time written inside; a second
writer is refused with an error naming the holder. The kernel drops the lock when the holder exits,
however it exits (even SIGKILL), so a stale ``.lock`` file never blocks a resume.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import attacked
from .errors import BenchmarkError, DataError, WriteError

STAGE_VERSION = 2  # bump when a stage's computation changes, to invalidate stored results
TOOL = "iqa-robustness-benchmark"  # the manifest's "tool" field: what makes a directory a run of this tool
LOCK_NAME = ".lock"
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$|^.+\.parquet\.tmp$")


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run directory's name (one safe path component), or None when it can."""
    if not name or name in (".", ".."):
        return "must not be empty, '.' or '..'"
    bad = [c for c in ("/", "\\", "\0") if c in name] + [c for c in name if ord(c) < 32]
    if bad or Path(name).is_absolute() or Path(name).name != name:
        return f"must be a single folder name (no {', '.join(map(repr, bad or ['/']))})"
    if name.startswith("-"):
        return "must not start with '-'"
    if not name.strip():
        return "must not be blank"
    if name != name.strip():
        return "must not begin or end with white space"
    return None


def content_key(payload: dict[str, Any]) -> str:
    blob = json.dumps({"v": STAGE_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a fresh temporary file beside ``path`` and rename it over ``path``.

    The temporary file is created like ``open(..., "w")`` would (mode 0666 less the umask), not with
    ``mkstemp``'s 0600, so results written into a shared folder stay readable by the group and others.
    A write that fails (the disk full, a quota, a file size limit, an I/O error) removes its temporary file,
    leaves ``path`` as it was, and raises :class:`~benchmark.errors.WriteError` naming ``path`` (an
    ``OSError`` too): the run stops, and ``--resume`` recomputes only what was not stored.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
                break
            except FileExistsError:  # pragma: no cover - 48 random bits
                continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # pragma: no cover - a directory that refuses even this; a resume removes it
                pass
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(path, exc) from exc
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n").encode())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def stage_path(self, kind: str, key: str, suffix: str = ".json") -> Path:
        return self.root / "stages" / kind / f"{key}{suffix}"

    def has(self, kind: str, key: str) -> bool:
        return self.stage_path(kind, key).is_file()

    def load(self, kind: str, key: str) -> dict[str, Any]:
        return json.loads(self.stage_path(kind, key).read_text())

    def save(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Store a finished stage (its images, if any, were written before): its JSON marks it complete."""
        self.clear_error(key)
        atomic_write_json(self.stage_path(kind, key), {"key": key, "kind": kind, **record})

    # -- per-image files of a stage (attacked images; benchmark.attacked) ---------------------
    def image_path(self, kind: str, key: str, image_id: str, fmt: str) -> Path:
        return self.root / "stages" / kind / key / attacked.file_name(image_id, fmt)

    def save_image(self, kind: str, key: str, image_id: str, x: torch.Tensor, fmt: str) -> None:
        self.save_image_bytes(kind, key, image_id, attacked.encode(x, fmt), fmt)

    def save_image_bytes(self, kind: str, key: str, image_id: str, data: bytes, fmt: str) -> None:
        atomic_write_bytes(self.image_path(kind, key, image_id, fmt), data)

    def image_bytes(self, kind: str, key: str, image_id: str, fmt: str) -> bytes:
        return self.image_path(kind, key, image_id, fmt).read_bytes()

    def load_image(self, kind: str, key: str, image_id: str, fmt: str) -> torch.Tensor:
        """One stored image, 3×H×W float32; a missing or unreadable file is a :class:`DataError` naming it."""
        try:
            return attacked.decode(self.image_bytes(kind, key, image_id, fmt), fmt)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"stored image {self.image_path(kind, key, image_id, fmt)} of {image_id} is missing "
                            f"or unreadable ({exc}); run again with --resume after deleting "
                            f"{self.stage_path(kind, key)} to recompute the stage") from None

    def save_error(self, key: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.root / "errors" / f"{key}.json", {"key": key, **record})

    def clear_error(self, key: str) -> None:
        p = self.root / "errors" / f"{key}.json"
        if p.exists():
            p.unlink()

    def errors(self) -> list[dict[str, Any]]:
        d = self.root / "errors"
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []

    def stages(self, kind: str) -> list[dict[str, Any]]:
        d = self.root / "stages" / kind
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []

    def planned_stages(self, kind: str) -> list[dict[str, Any]]:
        """The stored records of ``kind`` that the run's plan (``cells.json``) names: not those a resumed run
        left behind under older content keys. Every stored one when there is no plan."""
        plan = self.root / "cells.json"
        if not plan.is_file():
            return self.stages(kind)
        keys = sorted({c["keys"][kind] for c in json.loads(plan.read_text()) if kind in c.get("keys", {})})
        return [self.load(kind, k) for k in keys if self.has(kind, k)]


# -- run directories: recognising, clearing and locking them ------------------------------------
def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds a manifest.json written by this tool (its ``"tool"`` field)."""
    manifest = Path(path) / "manifest.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    legacy = isinstance(data.get("versions"), dict) and TOOL in data["versions"] and "plugins" in data
    return data.get("tool") == TOOL or legacy  # manifests written before the "tool" field name the package


def is_temp_file(path: Path) -> bool:
    """A temporary file of :func:`atomic_write_bytes` (``.<name>.<12 hex>.tmp``) or of the Parquet writer."""
    return bool(TEMP_NAME.match(Path(path).name))


def run_dir_contents(path: Path) -> list[Path]:
    """What a run directory holds besides its lock file and the temporary files of a killed writer."""
    path = Path(path)
    return sorted(p for p in path.iterdir() if p.name != LOCK_NAME and not is_temp_file(p)) if path.is_dir() else []


def clear_run_dir(path: Path) -> None:
    """Remove everything in a run directory of this tool except its (held) lock file.

    The lock file stays so that the lock the caller holds stays the one every other process sees.
    """
    path = Path(path)
    if not is_run_dir(path):
        raise BenchmarkError(f"{path} is not a run directory of this tool (no manifest.json with "
                             f"\"tool\": \"{TOOL}\"); refusing to delete it")
    for p in run_dir_contents(path):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def remove_stale_temp_files(path: Path) -> int:
    """Delete the temporary files a killed writer left behind (call with the run's lock held)."""
    n = 0
    for p in Path(path).rglob("*.tmp"):
        if is_temp_file(p) and (p.is_file() or p.is_symlink()):
            p.unlink()
            n += 1
    return n


def open_run_dir(output_dir: Path, name: str, *, resume: bool = False, overwrite: bool = False) -> "RunLock":
    """Check ``<output_dir>/<name>``, take its lock and, with ``overwrite``, empty it; returns the held lock.

    Refused with a :class:`BenchmarkError` naming the directory, before anything is deleted: a name that
    is not one safe folder name, a run directory that is a symbolic link or resolves outside
    ``output_dir``, a non-empty directory without ``resume`` or ``overwrite``, a non-empty directory that
    is not a run of this tool (see :func:`is_run_dir`), and a run another process holds (:class:`RunLocked`).
    ``resume`` wins over ``overwrite``: nothing is deleted when both are given.
    """
    output_dir = Path(output_dir)
    run_dir = output_dir / name
    if (problem := run_name_problem(name)) is not None:
        raise BenchmarkError(f"run name {name!r} {problem}")
    if run_dir.is_symlink() or (run_dir.exists() and run_dir.resolve().parent != output_dir.resolve()):
        raise BenchmarkError(f"run directory {run_dir} is a symbolic link (to {run_dir.resolve()}); a run "
                             f"directory must be a real folder inside {output_dir}")
    if run_dir.exists() and not run_dir.is_dir():
        raise BenchmarkError(f"{run_dir} exists and is not a directory")
    existing = run_dir_contents(run_dir)
    if existing and not (resume or overwrite):
        raise BenchmarkError(f"run directory {run_dir} already holds results; pass --resume to continue it "
                             "or --overwrite to start again")
    if existing and not is_run_dir(run_dir):
        raise BenchmarkError(f"{run_dir} is not empty and is not a run directory of this tool (no manifest.json "
                             f"written by it); refusing to {'resume into' if resume else 'delete'} it: choose "
                             "another run.name or --output-dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"cannot create the run directory {run_dir}: {exc.strerror}") from None
    lock = RunLock(run_dir).acquire()
    try:
        if overwrite and not resume and run_dir_contents(run_dir):
            clear_run_dir(run_dir)
        remove_stale_temp_files(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


class RunLocked(BenchmarkError):
    """Another process holds the run directory's lock."""


class RunLock:
    """An advisory lock (``flock``) on ``<run>/.lock``, held for a run's lifetime.

    ``acquire`` never blocks: when another process holds the lock it raises :class:`RunLocked` naming
    the holder (pid, host, start time, command line, as that process wrote them into the file).
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise BenchmarkError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self.holder(fd)
            os.close(fd)
            raise RunLocked(f"run directory {self.path.parent} is in use by {holder}; wait for it to finish "
                            "or stop it (nothing was changed)") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "argv": sys.argv,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    @staticmethod
    def holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
            return (f"process {info['pid']} on {info['host']} (started {info['started']}: "
                    f"{' '.join(map(str, info.get('argv', [])))})")
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (it has not written its details yet)"

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
