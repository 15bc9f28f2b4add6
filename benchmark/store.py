"""The run directory: manifest, per-stage records keyed by content hash, atomic writes.

Layout::

    <run>/manifest.json              config, resolved plugin parameters, versions, device, seeds
    <run>/stages/<kind>/<key>.json   one finished stage: its spec and per-image records
    <run>/stages/<kind>/<key>.pt     tensors of a stage (attacked images), written before its .json
    <run>/errors/<key>.json          a failed stage: its spec and the error
    <run>/records.csv, summary.csv, summary.md, report.html   derived; re-rendered by ``report``

A stage is complete when its ``.json`` exists; every file is written to a temporary name and renamed,
so an interrupted run never leaves a half-written record. Seeds derive from the key (sha256).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

STAGE_VERSION = 1  # bump when a stage's computation changes, to invalidate stored results


def content_key(payload: dict[str, Any]) -> str:
    blob = json.dumps({"v": STAGE_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def seed_from(*parts: Any) -> int:
    """A 63-bit seed from a sha256 of the parts (never time or Python's salted hash)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "little") % (2**63)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
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

    def save(self, kind: str, key: str, record: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
        if tensors is not None:
            import io

            buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in tensors.items()}, buf)
            atomic_write_bytes(self.stage_path(kind, key, ".pt"), buf.getvalue())
        self.clear_error(key)
        atomic_write_json(self.stage_path(kind, key), {"key": key, "kind": kind, **record})

    def load_tensors(self, kind: str, key: str) -> dict[str, torch.Tensor]:
        return torch.load(self.stage_path(kind, key, ".pt"), map_location="cpu", weights_only=True)

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
