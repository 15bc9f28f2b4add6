"""The pages reuse the whole run's defense ranking (benchmark/reports/html.py ``render_html(ranked=...)``): each
section's slice of it is the ranking the section would compute alone, so the pages are the same bytes; a ranking
whose ``cell_index`` refers to other rows is refused. The table rows written in Python (``html.table_rows``) are
the HTML the template loop they replace wrote."""
from __future__ import annotations

import sys
from pathlib import Path

import jinja2
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from report_timing import synthetic_run  # noqa: E402

# the body loop of macros.html.j2's ``table`` before it moved to html.table_rows
LOOP = """<tbody>
{% for r in t.rows %}<tr{% if t.ids and t.ids[loop.index0] %} id="{{ t.ids[loop.index0] }}"{% endif %}>{% for c in r %}<td class="{{ c.cls }}{{ ' l' if loop.index0 < left }}" data-v="{{ c.sort }}"{% if c.title or c.cls in ('best', 'worst') %} title="{{ c.title or '' }}{{ ' — ' if c.title and c.cls in ('best', 'worst') }}{{ c.cls ~ ' cell in this column' if c.cls in ('best', 'worst') }}"{% endif %}>{% if c.href %}<a href="{{ c.href }}">{{ c.text|wbr }}</a>{% else %}{{ c.text|wbr }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}
</tbody>"""


def _inputs(run: Path):
    """records, summary, the cells' statistics and the whole run's ranking, as build_report computes them."""
    from benchmark.measures import summarize
    from benchmark.records import load_records
    from benchmark.reports.runinfo import attach_direction, complete_summary
    from benchmark.reports.tables import with_ranks

    records = attach_direction(load_records(run), run)
    summary, by_cell, ranked = with_ranks(complete_summary(summarize(records), records, run), records, run)
    return records, summary, by_cell, ranked


def _ranked(summary: pd.DataFrame, by_cell: dict) -> pd.DataFrame:
    from benchmark.reports.ranking import defense_rows, rank_defenses

    s = summary.reset_index(drop=True)
    stats = {i: by_cell[k] for i, k in zip(s.index, zip(s["dataset"], s["metric"], s["attack"], s["defense"]))
             if k in by_cell}
    return rank_defenses(defense_rows(s, ["dataset", "metric", "defense"], stats))


def _pages(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes()
            for p in [run / "report.html", *sorted((run / "report").glob("*.html"))] if p.is_file()}


@pytest.mark.parametrize("defenses", [4, 12])   # one page; split into section pages (more than 200 cells)
def test_pages_with_the_whole_run_ranking_are_the_same_bytes(tmp_path, defenses):
    from benchmark.reports.html import render_html

    run = tmp_path / "run"
    synthetic_run(run, datasets=1, metrics=3, families=3, budgets=2, adaptive_families=1, defenses=defenses,
                  images=6, side=32)
    records, summary, by_cell, ranked = _inputs(run)
    render_html(run, summary, records, by_cell=by_cell)
    alone = _pages(run)
    render_html(run, summary, records, by_cell=by_cell, ranked=ranked)   # as build_report does
    assert _pages(run) == alone
    assert (len(alone) > 1) == (len(summary) > 200)


def test_a_ranking_of_other_rows_is_refused(tmp_path):
    from benchmark.reports.html import render_html

    run = tmp_path / "run"
    synthetic_run(run, datasets=1, metrics=2, families=2, budgets=1, adaptive_families=0, defenses=3, images=6,
                  side=32)
    records, summary, by_cell, _ = _inputs(run)
    shuffled = summary.sample(frac=1.0, random_state=0)   # its index is not the one render_html gives the rows
    with pytest.raises(ValueError, match="cell_index"):
        render_html(run, summary, records, by_cell=by_cell, ranked=_ranked(shuffled, by_cell).assign(
            cell_index=lambda t: [[int(shuffled.index.get_loc(i)) for i in c] for c in t["cell_index"]]))


def test_table_rows_write_what_the_template_loop_wrote():
    from benchmark.reports.html import table_rows, template_env

    env = template_env()
    t = {"rows": [[{"text": "pgd(eps=4/255,steps=10)", "sort": "", "cls": "", "title": None, "href": "#cell-0"},
                   {"text": "<b>&'\"", "sort": 0.1, "cls": "best", "title": "95 % interval [1, 2]"},
                   {"text": "0.5", "sort": "nan", "cls": "worst", "title": None, "href": None},
                   {"text": "x", "sort": 3},                                 # a raw-table cell: no cls, title, href
                   {"text": "adaptive, reference", "sort": "adaptive, reference", "cls": "flags"}],
                  [{"text": "", "sort": -0.0, "cls": "worst", "title": "t<"}, {"text": "y,(z)", "sort": 1e-7}]],
         "ids": ["cell-0"]}
    for left in (0, 1, 2, 4):
        expected = env.from_string(LOOP).render(t=t, left=left)
        assert "<tbody>\n" + str(table_rows(t, left)) + "</tbody>" == expected
    assert table_rows({"rows": [], "ids": []}) == ""
