"""Per-cell summaries kept between reports, so that ``report`` recomputes only the cells whose records changed.

A cell's summary row (:func:`benchmark.measures.summary_rows`) is a function of three things: the cell's records
(its rows, in order), the columns the run's records have (a column that only some cells have is NaN in the others,
and the measures look at which columns exist), and the code. ``<run>/cache/summary.json`` keeps each row under a
fingerprint of those three:

- the records: pandas' per-row hash of every value (``pandas.util.hash_pandas_object``), in the cell's row order;
- the columns: their names and dtypes;
- the code: the source of every module of this package, and the numpy, scipy and pandas versions.

A later ``report`` reads the rows whose fingerprint is stored and computes the others (the new cells of a resumed
run, stages recomputed, a new version of the tool: then every cell), in the order of the records; the frame is the
one :func:`benchmark.measures.summarize` gives (the stored rows are JSON, which keeps every float exactly). The file
holds the current cells only. The leaderboard reads it and never writes it."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..measures import summarize, summary_rows
from ..records import cells_of
from ..schema import CELL as CELL_KEY
from ..store import atomic_write_text

log = logging.getLogger(__name__)

CACHE = Path("cache") / "summary.json"
VERSION = 1   # of the stored file's layout
CELL = list(CELL_KEY)   # a list, as pandas groupby wants


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of this package's source and of the numerical libraries' versions: any change recomputes."""
    import scipy

    h = hashlib.sha256(json.dumps([np.__version__, scipy.__version__, pd.__version__]).encode())
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _head(df: pd.DataFrame) -> bytes:
    """What a fingerprint holds besides the rows: this file's layout, the code, and the columns with their dtypes."""
    return json.dumps([VERSION, code_fingerprint(), [(str(c), str(t)) for c, t in df.dtypes.items()]]).encode()


def cell_fingerprints(records: pd.DataFrame) -> dict[tuple[str, ...], str] | None:
    """The fingerprint of every cell of ``records`` (None when a value cannot be hashed: then nothing is kept)."""
    try:
        rows = pd.util.hash_pandas_object(records, index=False).to_numpy()
    except TypeError as exc:   # an unhashable value (a list in a column): summaries computed, not kept
        log.info("summaries: records not hashable (%s); every cell computed", exc)
        return None
    head = _head(records)
    return {tuple(cell): hashlib.blake2b(head + rows[pos].tobytes(), digest_size=16).hexdigest()
            for cell, pos in records.groupby(CELL, sort=False).indices.items()}


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON: {type(v).__name__}")


def load_rows(run_dir: Path) -> dict[str, dict]:
    """The stored rows by fingerprint ({} when there are none or the file is not this layout's)."""
    path = Path(run_dir) / CACHE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.info("summaries: %s not readable (%s); recomputed", path, exc)
        return {}
    return data.get("rows", {}) if isinstance(data, dict) and data.get("version") == VERSION else {}


def cell_summaries(records: pd.DataFrame, run_dir: Path, *, store: bool = True) -> pd.DataFrame:
    """:func:`benchmark.measures.summarize` of ``records``, reading the rows of unchanged cells from the run's cache
    and (with ``store``) writing the cache of the current cells when a row was computed or one is no longer used."""
    if records.empty:
        return summarize(records)
    fps = cell_fingerprints(records)
    if fps is None:
        return summarize(records)
    stored = load_rows(run_dir)
    missing = [cell for cell, fp in fps.items() if fp not in stored]
    if missing:
        fresh = dict(summary_rows(cells_of(records, missing)))
        log.info("cell summaries: %d of %d computed, %d read from %s", len(fresh), len(fps), len(fps) - len(fresh),
                 CACHE)
    else:
        fresh = {}
    rows = [fresh[cell] if cell in fresh else stored[fp] for cell, fp in fps.items()]
    if store and (fresh or len(stored) != len(fps)):
        kept = {fp: row for fp, row in zip(fps.values(), rows)}
        try:
            atomic_write_text(Path(run_dir) / CACHE, json.dumps({"version": VERSION, "rows": kept},
                                                                default=_jsonable, allow_nan=True))
        except OSError as exc:   # a read-only run directory: computed again next time, nothing lost
            log.info("summaries: %s not written (%s)", Path(run_dir) / CACHE, exc)
    return pd.DataFrame(rows)


def frame_fingerprint(df: pd.DataFrame) -> str | None:
    """A hash of a whole table (values in order, columns, dtypes) and of the code that writes it (None when a
    value cannot be hashed)."""
    try:
        rows = pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:
        return None
    return hashlib.blake2b(_head(df) + rows.tobytes(), digest_size=16).hexdigest()


__all__ = ["CACHE", "cell_fingerprints", "cell_summaries", "code_fingerprint", "frame_fingerprint", "load_rows"]
