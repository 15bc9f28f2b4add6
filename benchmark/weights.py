"""Weights files, in one place: reading checkpoints safely and turning missing downloads into clear errors.

- :func:`save_checkpoint`: ``torch.save`` written atomically (UAP perturbations, denoisers, training sets).
- :func:`load_checkpoint`: ``torch.load(weights_only=True, map_location="cpu")`` of a local file, so a
  checkpoint yields tensors, numbers, strings and containers only, never arbitrary pickled objects; a
  missing file is a :class:`MissingWeightsError` naming it and where to get it, a truncated or corrupt
  one a :class:`CheckpointError` naming it, a file that pickles Python objects a CheckpointError with a
  one-line re-save command. Every weights file the project reads goes through it (metrics, denoisers).
- :func:`check_weights_file`: the same check before a library (pyiqa) unpickles a user-named file without it.
- :func:`weights_guard`: every download pyiqa or torch hub would attempt becomes a MissingWeightsError naming
  the file to put in place (no network retries); :func:`offline_requested` reads ``HF_HUB_OFFLINE`` /
  ``BENCHMARK_OFFLINE``.

Used by the metrics (pyiqa adapter, released checkpoints) and the full-reference quality code (DISTS,
FSIM, LPIPS).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import BenchmarkError, MissingWeightsError
from .store import atomic_write_bytes


class CheckpointError(BenchmarkError):
    """A weights file that exists but is not the expected checkpoint: names the file and what is wrong."""


GENERIC_RESAVE = ("m = torch.load(SRC, weights_only=False); "
                  "m = m.state_dict() if hasattr(m, 'state_dict') else m.get('state_dict', m); torch.save(m, DST)")


def load_checkpoint(path: Path, what: str, release: str = "", resave: str = GENERIC_RESAVE, *,
                    hint: str | None = None, key: str | None = None, mmap: bool = False) -> Any:
    """``torch.load`` of a local file, safely; every failure is one line naming the file and what to do.

    - absent: :class:`MissingWeightsError` (``key``: the parameter naming the file) with ``hint``, or
      "Download it from ``release``";
    - not a torch file, truncated or corrupt: :class:`CheckpointError` with torch's reason, then ``hint``;
    - pickles Python objects: :class:`CheckpointError` with ``resave`` (a Python statement with
      ``SRC``/``DST`` placeholders) that re-saves it as plain tensors and numbers.

    ``mmap=True`` maps a zip checkpoint's tensors instead of reading them: the pickle is still fully
    checked, at a fraction of the cost (for files only checked here and read again by someone else).
    """
    path = Path(path)
    if not path.is_file():
        from .params import file_kind

        kind = file_kind(path)
        if kind != "missing or unreadable":  # there, but a folder, a device or a FIFO: never opened
            raise CheckpointError(f"{what}: {path} is {kind}, not a checkpoint file"
                                  + (f"; {hint}" if hint else ""))
        raise MissingWeightsError(what, str(path), hint or (release and f"Download it from {release} and point "
                                                            "'weights' at it"), key=key)
    try:
        if mmap:  # only zip checkpoints can be mapped; legacy files are read in full
            with path.open("rb") as fh:
                mmap = fh.read(4) == b"PK\x03\x04"
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
        pickled = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if pickled is None:
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", text) or re.match(r"(.*)", text)
            reason = re.split(r"(?<=[^.])\.\s", detail.group(1).strip())[0][:200]  # torch's first sentence
            raise CheckpointError(f"{what}: {path} is not a readable torch checkpoint "
                                  f"({type(exc).__name__}: {reason})" + (f"; {hint}" if hint else "")) from None
        cmd = resave.replace("SRC", repr(path.name)).replace("DST", repr(f"{path.stem}_plain.pt"))
        raise CheckpointError(
            f"{what}: {path} pickles Python objects ({pickled.group(1)}), so it does not load with "
            "torch.load(weights_only=True). "
            f"If you trust the file, re-save it as plain tensors and numbers: "
            f"python -c \"import torch; {cmd}\"") from None


def save_checkpoint(path: Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically (temporary file + rename): never a half-written checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def offline_requested() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("BENCHMARK_OFFLINE", "HF_HUB_OFFLINE"))


@contextlib.contextmanager
def weights_guard(metric: str, download: bool) -> Iterator[None]:
    """Turn every weights download pyiqa or torchvision attempts into a clear MissingWeightsError.

    Patches the two low-level downloaders (pyiqa's and torch hub's), which both receive the destination
    file: exactly the path the user has to fill. Hugging Face is switched offline when downloads are off.
    """
    import pyiqa.utils.download_util as pyiqa_dl
    import torch.hub as hub

    originals = (pyiqa_dl.download_url_to_file, hub.download_url_to_file)

    def wrap(orig):
        def fetch(url, dst, *args, **kwargs):
            hint = f"download {url} and put it there (or pass options.pretrained_model_path)"
            if not download:
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(dst), hint)
            try:
                return orig(url, dst, *args, **kwargs)
            except Exception as exc:
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(dst),
                                          f"download failed ({type(exc).__name__}); {hint}") from None
        return fetch

    pyiqa_dl.download_url_to_file, hub.download_url_to_file = wrap(originals[0]), wrap(originals[1])
    old_env = os.environ.get("HF_HUB_OFFLINE")
    if not download:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        pyiqa_dl.download_url_to_file, hub.download_url_to_file = originals
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def check_weights_file(path: Path, what: str, *, full: bool = True) -> None:
    """Unpickle a user-named file with ``torch.load(weights_only=True, mmap=True)`` before pyiqa unpickles it
    unrestricted; a file holding anything but tensors, numbers, strings and containers is refused
    (CheckpointError). The tensors of a zip checkpoint are mapped, not read (legacy files are read in full).

    MATLAB files (NIQE's parameters, read by scipy, which runs no code) pass: a file that begins with
    ``MATLAB`` cannot be a valid pickle stream. ``full=False`` (for ``validate``) only disassembles the
    pickle of a zip checkpoint (torch's static scan, which names the callables it would run) when it can.
    """
    with Path(path).open("rb") as fh:
        head = fh.read(6)
    if head == b"MATLAB":
        return
    if not full and head.startswith(b"PK\x03\x04"):
        from torch.serialization import get_unsafe_globals_in_checkpoint

        try:
            unsafe = get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - opcodes the scan does not follow: decide by a full safe load
            unsafe = None
        if unsafe == []:
            return
        if unsafe:
            raise CheckpointError(f"{what}: {path} is not a plain weights file: unpickling it would call "
                                  f"{', '.join(sorted(unsafe)[:3])}, which could run any code; refused")
    load_checkpoint(path, what, release="the metric's authors", mmap=True)
