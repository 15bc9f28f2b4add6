"""Command line: ``python -m benchmark {run,validate,list,report}``.

Precedence: command-line options > ``matrix.toml`` > defaults. User errors (bad config, missing
weights, unreadable data) print one clear line and exit with status 2; a run in which some cells
failed exits with status 1 after writing everything that succeeded. An expected runtime failure (the disk
full, a write refused, the device lost) ends ``run`` and ``report`` with one line naming the file or device
and exit status 3 (``errors.EXIT_STOPPED``): the finished stages are kept and ``--resume`` continues.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .errors import EXIT_STOPPED, BenchmarkError, ConfigError, RunStopped, run_stopping

log = logging.getLogger("benchmark")


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("benchmark").setLevel(level)
    # pyiqa logs every network construction at INFO through its own logger
    logging.getLogger("pyiqa").setLevel(logging.WARNING)


@contextmanager
def _stops(then: str):
    """An expected runtime failure inside (:func:`~benchmark.errors.run_stopping`: the disk full, a write refused,
    the device lost) as one :class:`RunStopped` line that names the file or device and ends with ``then``."""
    try:
        yield
    except Exception as exc:
        stop = run_stopping(exc)
        if stop is None:
            raise
        raise RunStopped(f"{stop}; {then}") from None


def cmd_validate(args) -> int:
    from .config import describe_config, load_config

    cfg = load_config(args.config, device=args.device, deep=True)  # every error at once, files and data opened
    print(describe_config(cfg))
    return 0


def cmd_run(args) -> int:
    from .config import load_config
    from .reports import build_report
    from .runner import Runner
    from .store import open_run_dir

    # what validate checks, before any work; --device and --threads win over [run]
    cfg = load_config(args.config, device=args.device, threads=args.threads, deep=True)
    run = cfg.run
    if args.output_dir:
        run = replace(run, output_dir=args.output_dir)
    cfg = replace(cfg, run=run)
    for item in cfg.skipped:  # optional entries whose files are missing: said here, and listed in the report
        log.warning("%s skipped (optional): %s", item["what"], item["reason"])
    executor = _executor(args, run)  # before the run directory is touched: a missing Ray is a user error (exit 2)
    run_dir = run.output_dir / run.name
    # checks the directory, takes its lock (a second writer is refused) and only then deletes (--overwrite)
    with _stops(f"the run stopped; the stages finished before it are kept in {run_dir}: run again with --resume "
                "to continue"), open_run_dir(run.output_dir, run.name, resume=args.resume, overwrite=args.overwrite):
        log.info("running %d cells into %s", cfg.n_cells, run_dir)
        failed = Runner(cfg, run_dir, progress=not args.no_progress).run(executor)
        log.info("building the report (tables, plots, image strips) in %s", run_dir)
        report = build_report(run_dir, progress=not args.no_progress)
    print(f"results: {run_dir}/summary.csv, per-image records: {run_dir}/records.csv, report: {report}")
    if failed:
        print(f"{failed} cell(s) failed; see {run_dir}/errors/ and the report", file=sys.stderr)
        return 1
    return 0


def _executor(args, run):
    from .executors import make_executor

    name = args.executor or run.executor  # the command line wins over [run] executor
    if name != "ray" and (args.address or args.ray_workers):
        raise BenchmarkError("--address and --ray-workers need --executor ray (or executor = \"ray\" in [run])")
    if name == "ray":
        address = args.address or (run.ray_address if run.executor == "ray" else None)
        return make_executor("ray", address=address, workers=args.ray_workers)
    return make_executor(name)


def cmd_calibrate(args) -> int:
    from .calibrate import calibrate, parse_target, target_text, write_calibration
    from .config import load_config

    targets = [parse_target(t) for t in args.targets]  # 4/255 (L∞), 40dB (PSNR), unit:0.05 (the attack's unit)
    if args.images < 1:
        raise BenchmarkError(f"--images: expected a number of images >= 1, got {args.images}")
    if not 0 < args.tol < 1:  # a relative tolerance; also refuses nan and inf
        raise BenchmarkError(f"--tol: expected a relative tolerance within (0, 1), got {args.tol}")
    cfg = load_config(args.config, device=args.device, threads=args.threads, deep=True)
    results = calibrate(cfg, targets, n_images=args.images, tol=args.tol)
    toml = write_calibration(results, args.output)
    for r in results:
        flag = "" if r["within_tol"] else "  (not within tolerance)"
        print(f"{r['metric']:24s} {r['attack']:36s} {target_text(r)}: {r['param']} = {r['value']:.6g} "
              f"(measured {r['measured']:.5g}, L∞ {r['measured_linf']:.5f}){flag}")
    print(f"written: {args.output} and {toml}")
    return 0


def cmd_report(args) -> int:
    from .reports import build_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "cells.json").is_file():
        raise BenchmarkError(f"{run_dir} is not a run directory (no cells.json)")
    with _stops(f"the report was not finished; the stored stages of {run_dir} are kept: run report again (or run "
                "--resume) once it is fixed"):
        report = build_report(run_dir, progress=True)
    print(report)
    return 0


def cmd_leaderboard(args) -> int:
    from .reports.leaderboard import build_leaderboard

    print(build_leaderboard(args.run_dirs, args.output, allow_mixed=args.allow_mixed))
    return 0


def cmd_list(args) -> int:
    from .config import table_keys
    from .registry import REGISTRIES, load_builtin_plugins, load_plugin_file

    load_builtin_plugins()
    for p in args.plugins or []:
        try:
            load_plugin_file(Path(p))
        except ConfigError as exc:
            raise ConfigError(exc.detail, file="command line", key="--plugins") from None
    families = [args.family] if args.family else list(REGISTRIES)
    out = {fam: [REGISTRIES[fam].describe(n) for n in REGISTRIES[fam].names()] for fam in families}
    keys = {fam: table_keys(fam) for fam in families}
    if "metrics" in families:
        from .metrics.zoo import zoo

        out["pyiqa metrics"] = [e.as_dict() for e in zoo(probe=args.probe)]
    if args.json:
        print(json.dumps({**out, "table_keys": keys}, indent=1, default=str))
        return 0
    zoo_rows = out.pop("pyiqa metrics", None)
    for fam, items in out.items():
        print(f"{fam}:")
        print(f"  every [[{fam}]] table takes, besides the parameters below:")
        for k in keys[fam]:
            print(f"      {k['name']} ({k['type']}, {'required' if k['default'] == 'required' else 'default ' + k['default']})"
                  f": {k['help']}")
        for it in items:
            print(f"  {it['name']:12s} {it['summary']}")
            for p in it["params"]:
                default = "required" if p["required"] else f"default {p['default_text']}"
                print(f"      {p['name']} ({p['type']}, {default})")
    if zoo_rows:
        print(f"pyiqa metrics (use name = \"pyiqa\", metric = \"<name>\"; weights cache {zoo_cache()}):")
        print(f"  {'name':22s} {'mode':4s} {'direction':9s} {'range':22s} {'gradient':10s} weights")
        for z in zoo_rows:
            where = f" {z['weight_file']}" if z["weights"] == "missing" else ""
            print(f"  {z['name']:22s} {z['mode']:4s} {'lower' if z['lower_better'] else 'higher':9s} "
                  f"{z['score_range']:22s} {z['gradient'][:10]:10s} {z['weights']}{where}")
    return 0


def zoo_cache() -> str:
    from .metrics.zoo import cache_dir

    return cache_dir()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark", description="Adversarial robustness benchmark "
                                 "for image-quality metrics: datasets × metrics × attacks × defenses.")
    ap.add_argument("-v", "--verbose", action="count", default=1, help="more logging (-vv for debug)")
    ap.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run (or resume) a matrix.toml")
    r.add_argument("config", type=Path)
    r.add_argument("--resume", action="store_true", help="skip every stage already stored in the run directory")
    r.add_argument("--overwrite", action="store_true", help="delete an existing run directory of this tool first "
                   "(one with its manifest.json; nothing else is ever deleted)")
    r.add_argument("--device", help="override run.device (e.g. cuda, cuda:1, cpu)")
    r.add_argument("--output-dir", type=Path, help="override run.output_dir")
    r.add_argument("--threads", type=int, metavar="N", help="override run.threads: torch threads of each process "
                   "that runs stages")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--executor", choices=["local", "ray"],
                   help="where stages run: in this process or on a Ray cluster (pip install -e '.[ray]'); "
                   "default: run.executor of the config, else local")
    r.add_argument("--address", help="Ray cluster to join: 'auto' (the one `ray start` started here) or HOST:PORT; "
                   "default: run.ray_address of the config, else start a Ray instance on this machine")
    r.add_argument("--ray-workers", type=int, metavar="N", help="Ray actors (one CPU each, one GPU each with a "
                   "CUDA device); default: as many as the cluster's resources hold")
    r.set_defaults(fn=cmd_run)
    v = sub.add_parser("validate", help="check a matrix.toml without running anything (writes nothing)")
    v.add_argument("config", type=Path)
    v.add_argument("--device", help="validate as if run with --device (e.g. cpu on a machine without CUDA)")
    v.set_defaults(fn=cmd_validate)
    ls = sub.add_parser("list", help="registered plugins with their parameters and defaults")
    ls.add_argument("family", nargs="?", choices=["datasets", "metrics", "attacks", "defenses"])
    ls.add_argument("--plugins", nargs="*", help="local plugin files to load first")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--probe", action="store_true", help="build each pyiqa metric whose weights are here and "
                    "check that gradients reach the input (slow)")
    ls.set_defaults(fn=cmd_list)
    cal = sub.add_parser("calibrate", help="find each attack's strength for budget categories (L∞, PSNR, its unit)")
    cal.add_argument("config", type=Path)
    cal.add_argument("--targets", nargs="+", default=["2/255", "4/255", "8/255", "16/255"],
                     help="L∞ budgets (4/255), PSNRs (40dB) or unit:VALUE in each attack's own budget unit")
    cal.add_argument("--images", type=int, default=8, help="images of the first dataset to measure on")
    cal.add_argument("--tol", type=float, default=0.02, help="relative tolerance on the mean measure")
    cal.add_argument("--device")
    cal.add_argument("--threads", type=int, metavar="N", help="override run.threads (torch threads)")
    cal.add_argument("-o", "--output", type=Path, default=Path("calibration.json"))
    cal.set_defaults(fn=cmd_calibrate)
    rep = sub.add_parser("report", help="re-render tables and HTML of a run directory from its records")
    rep.add_argument("run_dir", type=Path)
    rep.set_defaults(fn=cmd_report)
    lb = sub.add_parser("leaderboard", help="merge run directories into one leaderboard (CSV, Markdown, HTML)")
    lb.add_argument("run_dirs", type=Path, nargs="+")
    lb.add_argument("-o", "--output", type=Path, default=Path("site"), help="output folder (default: site/)")
    lb.add_argument("--allow-mixed", action="store_true", help="merge runs whose protocols differ (image size, "
                    "dataset or metric parameters, attack budgets) instead of refusing; the page names what differs")
    lb.set_defaults(fn=cmd_leaderboard)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(0 if args.quiet else args.verbose)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        status = args.fn(args)
        sys.stdout.flush()  # inside the try: a reader that left (BrokenPipeError) is handled below
        return status
    except RunStopped as exc:  # not the user's input: the disk or the device (one line, exit 3)
        print("error: " + str(exc).replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
        return EXIT_STOPPED
    except BenchmarkError as exc:
        # one line per error (ErrorList: every error validate found), whatever a message holds (a newline in a key)
        for e in getattr(exc, "errors", [exc]):
            print("error: " + str(e).replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `validate x.toml | head`: the reader left; no traceback, no flush error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command whose reader left
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept (use --resume)", file=sys.stderr)
        return 130
