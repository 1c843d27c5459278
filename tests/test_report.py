"""docs/RESULTS.md: every column benchmarks/report.py renders from the committed JSON is filled."""

from benchmarks import report


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_every_rendered_column_is_filled():
    text = report.render()
    tables, header = 0, None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if set(line) <= set("|-: "):
            continue  # the rule under a header
        if header is None:
            header, tables = cells, tables + 1
            continue
        assert len(cells) == len(header), line
        for name, cell in zip(header, cells):
            assert cell and cell.lower() not in ("none", "nan", "-nan"), (name, line)
    assert tables >= 10, "the report lost its tables"


def test_the_committed_page_is_what_the_report_renders():
    assert report.DOC.read_text() == report.render()
