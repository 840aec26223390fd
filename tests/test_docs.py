"""The docs in docs/ are complete and every reference in the project resolves inside it.

* every relative link of README.md, docs/*.md and the notebooks' markdown cells, and every
  ``docs/...`` or ``see ....md`` reference in the package's docstrings, names an existing
  file (and an existing heading, for ``#anchor`` or ``docs/x.md, "Heading"``);
* nothing the project ships cites a file outside the repository;
* the glossary, the run-directory page and the TensorBoard page name exactly what the code
  declares (columns, fields, tags, charts), and the concept page's paper table is the one
  satkit's analysis compares against.
"""

import json
import math
import re
from pathlib import Path

import pytest

from satkit import schema
from satkit.columns import (
    QUANTITIES,
    VALUES,
    column_dtypes,
    column_names,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = sorted((ROOT / "satkit").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))

# -- reading ------------------------------------------------------------------------------


def _cells(notebook: Path, kind: str | None = None) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if kind is None or c["cell_type"] == kind]


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n\n".join(_cells(path))
    return path.read_text(encoding="utf-8")


def _prose(markdown: str) -> str:
    """Markdown without fenced code blocks and inline code (links there are not links)."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (GitHub numbers repeated ones -1, -2, ...)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _section(page: str, title: str) -> str:
    """The text under ``## title`` up to the next heading of level 2."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, flags=re.S | re.M)
    assert match, f"no section '## {title}'"
    return match.group(1)


def _cells_of(line: str) -> list[str]:
    """The cells of a table row (a pipe inside a cell is written ``\\|``)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _rows(section: str) -> list[list[str]]:
    """The cells of the table rows of a section whose first cell is a `name`."""
    return [_cells_of(line) for line in section.splitlines() if line.startswith("| `")]


def _names(section: str) -> set[str]:
    return {n for row in _rows(section) for n in re.findall(r"`([^`]+)`", row[0])}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- links and references -----------------------------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# docs/<file>[#anchor], optionally followed by the heading quoted: , "Heading" (or 'Heading').
_DOCS_REF = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.\w+)(#[\w-]+)?"
                       r"(?:,\s*(?:section\s+)?(?:\"([^\"]+)\"|“([^”]+)”|'((?:[^']|'(?=\w))+)'))?")
_SEE_REF = re.compile(r"\b[Ss]ee\s+(?:the\s+)?`*([\w./-]+\.md)\b")


def _check_target(source: Path, base: Path, target: str) -> str | None:
    """None when ``target`` (a path, optionally with #anchor) resolves, else the problem."""
    path, _, anchor = target.partition("#")
    file = (base / path).resolve() if path else source
    if not file.exists():
        return f"{_rel(source)}: {target}: no such file"
    if anchor and file.suffix == ".md" and anchor not in _anchors(file):
        return f"{_rel(source)}: {target}: no heading with anchor #{anchor} in {file.name}"
    return None


def _markdown_links() -> list[tuple[Path, str]]:
    links = []
    for path in [ROOT / "README.md", *PAGES]:
        links += [(path, t) for t in _LINK.findall(_prose(_text(path)))]
    for notebook in NOTEBOOKS:
        for cell in _cells(notebook, "markdown"):
            links += [(notebook, t) for t in _LINK.findall(_prose(cell))]
    return [(p, t) for p, t in links if not _SCHEME.match(t)]


def test_markdown_links_resolve():
    problems = [_check_target(p, p.parent, t) for p, t in _markdown_links()]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


def _docs_references() -> list[tuple[Path, str, str | None]]:
    """(file, docs/<file>[#anchor], quoted heading or None) in every text the project ships."""
    refs = []
    for path in [ROOT / "README.md", *PAGES, *NOTEBOOKS, *SOURCES]:
        for name, anchor, *quoted in _DOCS_REF.findall(_text(path)):
            heading = next((" ".join(q.split()) for q in quoted if q), None)
            refs.append((path, f"docs/{name}{anchor}", heading))
    return refs


def test_docs_references_resolve():
    problems = []
    for source, target, heading in _docs_references():
        problem = _check_target(source, ROOT, target)
        file = ROOT / target.partition("#")[0]
        if problem is None and heading and file.suffix == ".md" \
                and _slug(heading) not in _anchors(file):
            problem = f"{_rel(source)}: {target}: no heading {heading!r} in {file.name}"
        problems.append(problem)
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


def test_see_references_in_docstrings_resolve():
    problems = []
    for source in SOURCES:
        for name in _SEE_REF.findall(source.read_text(encoding="utf-8")):
            candidates = [ROOT / name] if "/" in name else [DOCS / name, ROOT / name]
            if not any(c.exists() for c in candidates):
                problems.append(f"{_rel(source)}: see {name}: no such file")
    assert not problems, "\n".join(problems)


def test_the_package_points_at_the_docs():
    refs = {(_rel(p), t) for p, t, _ in _docs_references() if p.suffix == ".py"}
    assert ("satkit/schema.py", "docs/run-directory.md") in refs
    assert ("satkit/functional.py", "docs/concept.md") in refs


# -- nothing outside the repository -------------------------------------------------------

#: Files outside the repository that the project's text has cited.
_OUTSIDE = re.compile(r"PAPER\.md|STYLE\.md|poster\.txt|(?<![\w.-])shared/")
_SHIPPED = [ROOT / "README.md", *NOTEBOOKS, *PAGES, *SOURCES]


@pytest.mark.parametrize("path", _SHIPPED, ids=_rel)
def test_nothing_cites_a_file_outside_the_repository(path):
    lines = [f"{_rel(path)}:{i}: {line.strip()}"
             for i, line in enumerate(_text(path).splitlines(), 1) if _OUTSIDE.search(line)]
    assert not lines, "\n".join(lines)


# -- the docs name what the code declares -------------------------------------------------


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_tables_are_well_formed(page):
    """Every row of a table has as many cells as its header (a pipe in a cell is escaped)."""
    width = None
    for i, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            width = None
        elif width is None:
            width = len(_cells_of(line))
        else:
            assert len(_cells_of(line)) == width, f"{page.name}:{i}: {line}"


def test_docs_index_links_every_page():
    index = _page("README.md")
    assert {p.name for p in PAGES} - {"README.md"} <= set(_LINK.findall(index))


def test_glossary_metrics_columns_match_the_declarations():
    section = _section(_page("glossary.md"), "Metrics columns")
    declared = {"step"}
    for q in QUANTITIES:
        declared |= {q.name, f"{q.name}_<tau>"} if q.reduce == "fraction" else {q.name}
    assert _names(section) == declared
    from satkit.sinks.tensorboard_layout import group_of

    declarations = {q.name: q for q in QUANTITIES}
    for row in _rows(section):  # the TensorBoard group column is the group the sink writes
        name = re.findall(r"`([^`]+)`", row[0])[0]
        q = declarations.get(name.removesuffix("_<tau>"))
        if q is not None:
            alias = q.reduce == "fraction" and name == q.name
            group = group_of(name.replace("<tau>", "0.9"))
            assert row[1] == ("(not written)" if alias else schema.TENSORBOARD_GROUPS[group]), row
    for column in column_names(schema.DEFAULT_THRESHOLDS):  # the defaults are spelled out
        assert f"`{column}`" in section, column


def test_glossary_values_samples_epochs_and_summary_match_the_schema():
    page = _page("glossary.md")
    assert _names(_section(page, "Per-position values")) == set(VALUES)
    assert _names(_section(page, "Samples columns")) == set(schema.SAMPLE_COLUMNS)
    assert _names(_section(page, "Label columns")) == set(schema.SAMPLE_LABEL_COLUMNS)
    assert _names(_section(page, "Epochs columns")) == set(schema.EPOCH_COLUMNS)
    assert _names(_section(page, "summary.json fields")) == set(schema.SUMMARY_FIELDS)
    assert _names(_section(page, "Test predictions columns")) == \
        set(schema.TEST_PREDICTION_COLUMNS)


def test_run_directory_names_every_file_column_and_field():
    page = _page("run-directory.md")
    files = _section(page, "Files")
    for name in (schema.CONFIG, schema.METRICS, schema.SAMPLES, schema.EPOCHS, schema.SUMMARY,
                 schema.CHECKPOINT, schema.DASHBOARD, schema.TEST_PREDICTIONS,
                 "events.out.tfevents.*"):
        assert f"| `{name}` |" in files, name
    dtypes = column_dtypes(schema.DEFAULT_THRESHOLDS)
    metrics = " ".join(_section(page, "metrics.parquet").split())
    for column, dtype in dtypes.items():
        assert f"`{column}`" in metrics, column
        if dtype != "float64":
            assert f"`{column}` ({dtype})" in metrics, column
    samples = " ".join(_section(page, "samples.parquet").split())
    for column, (dtype, _) in {**schema.SAMPLE_COLUMNS, **schema.SAMPLE_LABEL_COLUMNS}.items():
        assert f"`{column}` ({dtype})" in samples, column
    predictions = " ".join(_section(page, schema.TEST_PREDICTIONS).split())
    for column, (dtype, _) in schema.TEST_PREDICTION_COLUMNS.items():
        assert f"`{column}` ({dtype})" in predictions, column
    epochs = _section(page, "epochs.csv")
    assert re.findall(r"`(\w+)`", epochs)[:len(schema.EPOCH_COLUMNS)] == list(schema.EPOCH_COLUMNS)
    summary = _section(page, "summary.json")
    assert re.findall(r"`(\w+)`", summary)[:len(schema.SUMMARY_FIELDS)] == \
        list(schema.SUMMARY_FIELDS)  # "in that order"


def test_run_directory_names_the_parts_the_table_sink_leaves(tmp_path):
    from satkit.sinks import TableSink

    sink = TableSink(tmp_path / schema.METRICS)
    sink.write([{"step": 0, "loss": 1.0}])
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != schema.METRICS]
    sink.close()
    page = _page("run-directory.md")
    assert left and all(f"`{p.parent.name}/`" in page for p in left)
    assert all(re.sub(r"\d+", "*", p.name) in page for p in left)


def test_tensorboard_page_names_every_tag_and_chart():
    from satkit.sinks.tensorboard_layout import (
        HISTOGRAM_TAGS,
        comparison_layout,
        epoch_tag,
        log10_tag,
        tag_for,
    )

    page = _page("tensorboard.md")
    for group in schema.TENSORBOARD_GROUPS.values():
        assert f"`{group}/`" in page, group
    for column in column_names(schema.DEFAULT_THRESHOLDS):
        for tag in (tag_for(column), log10_tag(column)):
            assert tag is None or f"`{tag}`" in page, tag
    for column in ("train_loss", "train_error", "test_loss", "test_error", "lr"):
        assert f"`{epoch_tag(column)}`" in page, column
    for tag in HISTOGRAM_TAGS.values():
        assert f"`{tag}`" in page, tag
    flat = " ".join(page.split())  # chart titles may wrap across lines
    for category, charts in comparison_layout().items():
        assert f"### {category}\n" in page, category
        for title in charts:
            assert f"**{title}**" in flat, title


def test_concept_paper_table_is_the_analysis_table():
    from satkit.analysis import paper_results

    section = _section(_page("concept.md"), "The paper's results")
    rows = [_cells_of(line) for line in section.splitlines()
            if line.startswith("| ") and "---" not in line]
    header, body = rows[0], rows[1:]
    shown = {}
    for method, *errors in body:
        alpha2 = (0.0 if method == "Softmax" else math.nan if method.startswith("DisturbLabel")
                  else float(method.rsplit("=", 1)[1]))
        for benchmark, error in zip(header[1:], errors, strict=True):
            shown[(benchmark, alpha2)] = float(error)
    expected = {(r.benchmark, r.alpha2): r.error for r in paper_results().itertuples()}
    assert {(b, "nan" if math.isnan(a) else a): e for (b, a), e in shown.items()} == \
        {(b, "nan" if math.isnan(a) else a): e for (b, a), e in expected.items()}


def test_concept_lists_every_noise_family():
    from satkit.methods import NOISE_FAMILIES

    section = _section(_page("concept.md"), "The ablation families")
    families = {re.findall(r"`([^`]+)`", row[0])[0] for row in _rows(section)}
    assert families == set(NOISE_FAMILIES)
