"""``[run]`` (``benchmark.config_run``): ``threads``, the torch threads of each process that runs stages, is an
integer within 1..1024, torch's own default when not given (measured: docs/matrix.md), and ``run --threads N``
wins over it."""
from __future__ import annotations

import pytest

from benchmark.cli import build_parser, main
from benchmark.config import RUN_KEYS, RunSettings, load_config
from benchmark.config_run import DEFAULT_THREADS
from benchmark.errors import ConfigError

from conftest import write_config

TABLES = '[[datasets]]\nname = "synthetic"\n[[metrics]]\nname = "default"\n[[attacks]]\nname = "fgsm"\n' \
         '[[defenses]]\nname = "identity"\n'


def matrix(tmp_path, run: str = ""):
    return write_config(tmp_path, f'[run]\nname = "threads"\n{run}\n{TABLES}')


def test_threads_default_to_torch_s_own_and_are_read_from_the_file(tmp_path):
    assert DEFAULT_THREADS is None and RunSettings(name="x", output_dir=tmp_path).threads is None
    assert "threads" in RUN_KEYS
    assert load_config(matrix(tmp_path)).run.threads is None
    assert load_config(matrix(tmp_path, "threads = 3")).run.threads == 3


RANGE = "expected an integer within 1..1024 (torch threads per process), got {}"


@pytest.mark.parametrize("value, message", [("0", RANGE.format(0)), ("-2", RANGE.format(-2)),
                                            ("1025", RANGE.format(1025)), ("true", "expected an integer, got True"),
                                            ('"4"', "expected an integer, got '4'"),
                                            ("2.5", "expected an integer, got 2.5")])
def test_a_bad_thread_count_is_an_error_naming_the_key(tmp_path, value, message):
    with pytest.raises(ConfigError) as err:
        load_config(matrix(tmp_path, f"threads = {value}"))
    assert (err.value.key, err.value.detail) == ("run.threads", message)


def test_the_command_line_wins_and_is_checked_as_the_file_is(tmp_path, capsys):
    path = matrix(tmp_path, "threads = 3")
    assert load_config(path, threads=2).run.threads == 2
    with pytest.raises(ConfigError) as err:
        load_config(path, threads=0)
    assert (err.value.file, err.value.key) == ("command line", "--threads")
    assert "expected an integer within 1..1024" in err.value.detail
    assert build_parser().parse_args(["run", str(path), "--threads", "4"]).threads == 4
    assert build_parser().parse_args(["calibrate", str(path), "--threads", "4"]).threads == 4
    assert build_parser().parse_args(["run", str(path)]).threads is None   # then [run] threads
    assert main(["run", str(path), "--threads", "0", "--output-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == ("error: command line, key '--threads': expected an integer within "
                                               "1..1024 (torch threads per process), got 0")
    assert not (tmp_path / "runs").exists()   # refused before any work
