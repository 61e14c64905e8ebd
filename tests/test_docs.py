"""The docs site: it builds with ``mkdocs build --strict``, the generated pages hold what the code
registers, the generator's Markdown handling, and every ``python`` snippet of the hand-written
pages runs against the current code.

Snippets: every fenced block tagged ``python`` in ``docs/*.md`` is executed, the blocks of one page
in order and in one namespace. A block is skipped only when it imports an optional dependency that
is not installed, or a ``twostage_gym.multiagent`` module that does not exist. Use another tag
(``text``, ``bash``, ``pycon``) for code that is not meant to run.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OPTIONAL = {"torch", "pettingzoo", "stable_baselines3", "matplotlib", "scipy", "tqdm", "ray"}
MULTIAGENT = "twostage_gym.multiagent"


def load_generator():
    """Import ``docs/gen_pages.py`` as a module, without running it."""
    spec = importlib.util.spec_from_file_location("docs_gen_pages", DOCS / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def page_text(path: Path) -> str:
    """The visible text of a built page's article, whitespace-normalised."""
    source = path.read_text(encoding="utf-8")
    start, end = source.find("<article"), source.find("</article>")
    text = re.sub(r"<[^>]+>", " ", source[start:end])
    return " ".join(html.unescape(text).split())


def built_page(site: Path, page: str) -> Path:
    """The HTML file MkDocs builds for the source page ``page`` (``use_directory_urls``)."""
    stem = page.removesuffix(".md")
    return site / ("index.html" if stem == "index" else f"{stem.removesuffix('/index')}/index.html")


# -- the build ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocs_gen_files")
    out = tmp_path_factory.mktemp("site")
    # Two of the theme's plugins print a banner about MkDocs 2.0 on every build; it is noise here.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_every_registered_id_has_an_environment_page(site: Path) -> None:
    import twostage_gym

    families = gen.env_families(twostage_gym.ENV_IDS)
    assert sum(len(f.ids) for f in families) == len(twostage_gym.ENV_IDS)
    index = page_text(built_page(site, "environments/index.md"))
    for family in families:
        text = page_text(built_page(site, family.page))
        assert text.startswith(family.title)
        for env_id in family.ids:
            assert env_id in text and env_id in index
        # The page renders the class docstring: the start of its Description is there.
        doc = inspect.getdoc(family.cls)
        description = doc.split("## Description", 1)[1].strip().splitlines()[0]
        words = " ".join(re.sub(r"[*`]", "", description).split()[:6])
        assert words in text, f"{family.page} lacks the docstring's {words!r}"


def test_nominators_page(site: Path) -> None:
    text = page_text(site / "environments" / "nominators" / "index.html")
    for needle in (
        "TwoStage/Nominators-v0",
        "TwoStage/Nominators-Prop2A-v0",
        "TwoStage/Nominators-Prop2B-v0",
        "twostage_gym.envs.nominators.NominatorsVectorEnv",
        "Action Space",
        "Info keys",
    ):
        assert needle in text, needle
    source = (site / "environments" / "nominators" / "index.html").read_text(encoding="utf-8")
    assert "<blockquote>" not in source  # doctest lines are code, not nested quotes


def test_multiagent_pages_or_a_note(site: Path) -> None:
    pages, notes = gen.multiagent_pages()
    index = page_text(built_page(site, "environments/index.md"))
    for page in pages:
        text = page_text(built_page(site, page.page))
        assert page.module.rpartition(".")[2] in text
        assert "Description" in text
    for note in notes:
        assert re.sub(r"[`*]", "", note).split(":")[0] in index
    assert pages or notes


def test_agents_page_lists_every_agent(site: Path) -> None:
    import agents

    source = (site / "agents" / "index.html").read_text(encoding="utf-8")
    assert "agent-table" not in source  # the marker was replaced by the generated table
    for name in agents.names():
        assert f"<code>{html.escape(name)}</code>" in source, name
    text = page_text(site / "agents" / "index.html")
    for argument in ("alpha", "ranker_alpha", "nominator_alpha", "lam", "lr", "nominator_training"):
        assert argument in text
    # One section per family, opened by its package's docstring.
    for family in agents.families.values():
        assert f'id="{gen.slug(family.name)}"' in source, family.name
        first = gen.summary(sys.modules[family.package].__doc__)
        assert " ".join(first.split()[:6]) in text, family.package


def test_reference_runs_page(site: Path) -> None:
    source = (site / "reference-runs" / "index.html").read_text(encoding="utf-8")
    assert "reference-tables" not in source  # every marker was replaced
    text = page_text(site / "reference-runs" / "index.html")
    for name in ("kiyohara2026-table2", "kiyohara2026-table3"):
        assert f"{name}: " in text and "reproduced:" in text


def test_reference_tables_are_the_report_of_the_records(table2_k10_records: Path, tmp_path: Path) -> None:
    from agents.bench.claims import CLAIMS
    from agents.bench.run import Job, run_into

    assert gen.reference_tables(tmp_path / "none", ["kiyohara2026-table2"])[0].startswith("!!! note")
    table2 = CLAIMS["kiyohara2026-table2"]
    tmp_path = tmp_path / "records"
    shutil.copytree(table2_k10_records, tmp_path)  # a run is added below
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    markdown, figures = gen.reference_tables(tmp_path, ["kiyohara2026-table2", "kiyohara2026-table3"])
    assert "### kiyohara2026-table2" in markdown and "### kiyohara2026-table3" in markdown
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # the records directory is left as it was
    # The horizon and the seeds are the records': 20 steps, seed 0; the K = 10 cells are filled.
    report = table2.run(20, [0], out=tmp_path, progress=False, run_missing=False)
    done = [c for c in report["cells"] if c["n_seeds"]]
    assert len(done) == 4 and "pending" in markdown
    for c in done:
        assert f"{c['value_early'][0]:.2f} -> {c['value_final'][0]:.2f}" in markdown
    if importlib.util.find_spec("matplotlib") is not None:
        assert figures["kiyohara2026-table2-curves.png"].startswith(b"\x89PNG")
        assert "](reference-runs/kiyohara2026-table2-curves.png)" in markdown
    # A directory of runs with two horizons is not one table.
    run_into(tmp_path, [Job(table2.configs(30)[("v-pg", "K=10")], 0)], workers=1, progress=False)
    with pytest.raises(ValueError, match="one horizon"):
        gen.reference_tables(tmp_path, ["kiyohara2026-table2"])


# -- the generator's Markdown ---------------------------------------------------------------


def test_docstring_markdown() -> None:
    doc = """## Description

    A reward r = <theta*, x> with f* the *true* model; ``a < b`` and `f*` stay code.
    Links like <https://example.org> stay links.

    * a list item
    * another

    ## Example

    >>> 1 + 1
    2
    """
    out = gen.docstring_markdown(doc)
    assert "r = &lt;theta\\*, x> with f\\* the *true* model" in out
    assert "``a < b`` and `f*` stay code" in out
    assert "<https://example.org>" in out
    assert "* a list item\n* another" in out
    assert "```pycon\n>>> 1 + 1\n2\n```" in out
    assert out.startswith("## Description")
    assert gen.docstring_markdown("# Title\n\ntext\n\n## Sub").splitlines()[::2] == ["## Title", "text", "### Sub"]
    fenced = "## A\n\n```python\nx = a<b  # f*\n```"
    assert gen.docstring_markdown(fenced).strip() == fenced


def test_generator_notes_missing_multiagent(monkeypatch: pytest.MonkeyPatch) -> None:
    pages, notes = gen.multiagent_pages("twostage_gym.no_such_package")
    assert not pages and "could not be imported" in notes[0]
    monkeypatch.setattr(gen.importlib.util, "find_spec", lambda name, *a: None)
    pages, notes = gen.multiagent_pages()
    assert not pages and "PettingZoo is not installed" in notes[0]


# -- snippets -------------------------------------------------------------------------------

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _missing_import(source: str) -> str | None:
    """The first import of ``source`` that is an absent optional dependency or multi-agent module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == MULTIAGENT:
                names += [f"{MULTIAGENT}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            optional = name.split(".")[0] in OPTIONAL or name.startswith(MULTIAGENT + ".")
            if optional and importlib.util.find_spec(name) is None:
                return name
    return None


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_snippets_run(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    namespace: dict = {"__name__": f"docs_{page.removesuffix('.md').replace('-', '_')}"}
    skipped = []
    for i, source in enumerate(blocks):
        missing = _missing_import(source)
        if missing:
            skipped.append(f"block {i} needs {missing}")
            continue
        exec(compile(source, f"docs/{page} (python block {i})", "exec"), namespace)
    if skipped:
        pytest.skip("; ".join(skipped))
