"""Generate the reference pages of the docs site from the code (run by mkdocs-gen-files).

On every ``mkdocs build`` or ``mkdocs serve`` this script writes, into the site only (nothing
under ``docs/`` changes):

* ``environments/<family>.md``: one page per environment class, grouping every id of
  ``twostage_gym.ENV_IDS`` by its gymnasium entry point. The page holds the registered ids
  (kwargs, ``max_episode_steps``, native vector env), their spaces, and the class docstring.
* ``environments/multiagent/<module>.md``: one page per ``twostage_gym.multiagent`` module that
  defines ``raw_env``, from that class's docstring; skipped, with a note on the index, when
  PettingZoo or the package is missing.
* ``environments/index.md``: the index of all of the above.
* ``agents.md``: the hand-written page with, in place of the marker line ``<!-- agent-table -->``,
  one section per family of ``agents.families``: the family package's docstring, its registered
  names and their learner classes' arguments. A new family documents itself by registering.
* ``reference-runs.md``: the hand-written page with each marker line
  ``<!-- reference-tables DIR: CLAIM, ... -->`` replaced by those claims' tables, made of the
  records in ``docs/reference-runs/DIR`` as ``twostage-bench reproduce --report`` prints them, and
  their learning-curve figures beside the page.

The generated pages are also appended to the ``Environments`` section of the nav, so a new
environment family documents itself by being registered.

Docstrings are Markdown with Gymnasium-style ``## Description``-like sections, written to be
read as plain text too. Rendering them makes three adjustments: doctest lines become
``pycon`` code blocks (else ``>>>`` reads as nested quotes), ``<`` outside code is escaped
(``<theta*, x>`` is notation, not an HTML tag) and a ``*`` that opens no emphasis (``f*``,
``theta*``) is escaped. Headings are demoted when needed so the page title is the only H1.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_DIR = "environments"
MULTIAGENT_DIR = f"{ENV_DIR}/multiagent"
AGENTS_PAGE = "agents.md"
AGENT_TABLE_MARKER = "<!-- agent-table -->"
REFERENCE_PAGE = "reference-runs.md"
REFERENCE_DIR = "reference-runs"
REFERENCE_MARKER = re.compile(r"^<!-- reference-tables ([\w-]+): ([\w\s,-]+) -->$", re.M)
"""``<!-- reference-tables DIR: CLAIM, CLAIM -->`` on the reference page: the tables of those claims
made of the records in ``docs/reference-runs/DIR``."""
NAV_SECTION = "Environments"
MULTIAGENT_NAV_SECTION = "Multi-agent (PettingZoo)"
_PACKAGES = ("twostage_gym", "agents")
_MAKE_VEC = 'gym.make_vec(id, num_envs, vectorization_mode="vector_entry_point")'


# -- docstring -> Markdown ------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})(\s+)(.*)$")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_RAW_LT = re.compile(r"<(?![A-Za-z][A-Za-z0-9+.-]*://[^<>\s]*>)")
_LIST_STAR = re.compile(r"^[ \t]*\*[ \t]")
_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj):`(~?)([^`]+)`")


def docstring_markdown(doc: str | None, top_level: int = 2) -> str:
    """Render a docstring (Markdown, readable as plain text) as page content.

    Args:
        doc: the docstring; it is cleaned with :func:`inspect.cleandoc`.
        top_level: the level its highest heading gets (2 under a page's H1). Headings are only
            ever demoted, never promoted.

    Returns:
        Markdown: doctest blocks fenced as ``pycon``, headings demoted, and ``<`` and stray
        ``*`` escaped outside code.
    """
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    shift = _heading_shift(lines, top_level)
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(_escape_text("\n".join(paragraph)).split("\n"))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:  # a fenced block: copied verbatim up to its closing fence
            flush()
            marker = fence.group(1)
            out.append(line)
            i += 1
            while i < len(lines):
                out.append(lines[i])
                i += 1
                if lines[i - 1].strip().startswith(marker[0] * len(marker)):
                    break
            continue
        if line.lstrip().startswith(">>>"):  # a doctest: up to the next blank line
            flush()
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.extend(["```pycon", *inspect.cleandoc("\n".join(block)).splitlines(), "```"])
            continue
        if not line.strip():
            flush()
            out.append("")
        elif (heading := _HEADING.match(line)) and not paragraph:
            level = min(6, len(heading.group(1)) + shift)
            out.append("#" * level + heading.group(2) + _escape_text(heading.group(3)))
        elif not paragraph and line.startswith("    ") and (not out or not out[-1].strip()):
            # An indented code block (after a blank line): verbatim up to the next blank line.
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            continue
        else:
            paragraph.append(line)
        i += 1
    flush()
    return "\n".join(out).strip() + "\n"


def _heading_shift(lines: list[str], top_level: int) -> int:
    levels, in_fence = [], False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (heading := _HEADING.match(line)):
            levels.append(len(heading.group(1)))
    return max(0, top_level - min(levels)) if levels else 0


def _escape_text(text: str) -> str:
    """Escape ``<`` and stray ``*`` in a paragraph, leaving code spans alone; Sphinx cross-reference
    roles (``:class:`~a.B```) become code spans (``B``; the full path without the ``~``)."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).rpartition('.')[2] if m.group(1) else m.group(2)}`", text)
    spans: list[str] = []

    def keep(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    text = _CODE_SPAN.sub(keep, text)
    text = _RAW_LT.sub("&lt;", text)
    text = _escape_stray_stars(text)
    return re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], text)


def _escape_stray_stars(text: str) -> str:
    """Keep ``*emphasis*`` pairs, ``**`` runs and ``* `` list markers; escape every other ``*``."""
    out: list[str] = []
    opener: int | None = None  # index in ``out`` of an unmatched emphasis opener
    for i, ch in enumerate(text):
        if ch != "*":
            out.append(ch)
            continue
        prev = text[i - 1] if i else "\n"
        nxt = text[i + 1] if i + 1 < len(text) else "\n"
        line_start = text.rfind("\n", 0, i) + 1
        if prev in "*\\" or nxt == "*" or _LIST_STAR.match(text[line_start : i + 2]):
            out.append(ch)
        elif opener is None and not nxt.isspace() and not (prev.isalnum() or prev in ")]}"):
            opener = len(out)
            out.append(ch)
        elif opener is not None and not prev.isspace():
            opener = None
            out.append(ch)
        else:
            out.append("\\*")
    if opener is not None:
        out[opener] = "\\*"
    return "".join(out)


def summary(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def code(text: str) -> str:
    """``text`` as an inline code span, safe inside a table cell."""
    text = " ".join(str(text).split())
    ticks = "``" if "`" in text else "`"
    return f"{ticks}{text}{ticks}"


def cell(text: str) -> str:
    """Plain ``text`` made safe for a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def title_from_class(name: str) -> str:
    """``NominatorsEnv`` -> ``Nominators``; ``TopicItemEnv`` -> ``Topic Item``."""
    name = re.sub(r"Env$", "", name) or name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# -- environments ---------------------------------------------------------------------------


@dataclass
class EnvFamily:
    """The registered ids sharing one entry-point class, and the page they get."""

    entry_point: str
    cls: type | None
    ids: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def class_name(self) -> str:
        return self.cls.__name__ if self.cls is not None else self.entry_point.rpartition(":")[2]

    @property
    def title(self) -> str:
        return title_from_class(self.class_name)

    @property
    def page(self) -> str:
        return f"{ENV_DIR}/{slug(self.title)}.md"


def _entry_point_name(entry_point: Any) -> str:
    if isinstance(entry_point, str):
        return entry_point
    return f"{entry_point.__module__}:{entry_point.__qualname__}"


def env_families(env_ids: Iterable[str]) -> list[EnvFamily]:
    """Group ``env_ids`` by their gymnasium entry point, in registration order."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    families: dict[str, EnvFamily] = {}
    for env_id in env_ids:
        spec = gym.spec(env_id)
        name = _entry_point_name(spec.entry_point)
        if name not in families:
            family = EnvFamily(name, None)
            try:
                creator = load_env_creator(name) if isinstance(spec.entry_point, str) else spec.entry_point
                family.cls = creator if inspect.isclass(creator) else None
            except Exception as err:  # a page saying why beats a failed build
                family.error = f"{type(err).__name__}: {err}"
            families[name] = family
        families[name].ids.append(env_id)
    return list(families.values())


def _kwargs_cell(kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return "(class defaults)"
    return "<br>".join(code(f"{k}={v!r}") for k, v in kwargs.items())


def _spaces(env_id: str) -> tuple[str, str]:
    """The action and observation space of ``gym.make(env_id)``, or why they are unknown."""
    import gymnasium as gym

    try:
        env = gym.make(env_id, disable_env_checker=True)
    except Exception as err:
        return (f"not available ({type(err).__name__})",) * 2
    try:
        return code(repr(env.action_space)), code(repr(env.observation_space))
    finally:
        env.close()


def env_page(family: EnvFamily, learners: list[Any]) -> str:
    """The page of one environment class."""
    import gymnasium as gym

    cls = family.cls
    module = sys.modules.get(cls.__module__) if cls is not None else None
    parts = [f"# {family.title}\n"]
    if module is not None and module.__doc__:
        parts.append(docstring_markdown(summary(module.__doc__)))
    parts.append(f"Class: {code(family.entry_point.replace(':', '.'))}\n")
    specs = [gym.spec(env_id) for env_id in family.ids]
    vector = sorted({_entry_point_name(s.vector_entry_point) for s in specs if s.vector_entry_point})
    if vector:
        parts.append(
            f"Native vector env: {', '.join(code(v.replace(':', '.')) for v in vector)}, used by {code(_MAKE_VEC)}.\n"
        )

    parts.append("## Registered ids\n")
    rows = []
    for s in specs:
        rows.append(
            [
                code(s.id),
                _kwargs_cell(s.kwargs),
                str(s.max_episode_steps) if s.max_episode_steps is not None else "none",
                "yes" if s.vector_entry_point else "no",
            ]
        )
    parts.append(table(["id", "kwargs", "max_episode_steps", "native vector env"], rows))
    parts.append("## Spaces\n")
    parts.append(table(["id", "action space", "observation space"], ([code(i), *_spaces(i)] for i in family.ids)))

    if cls is None:
        parts.append(f"!!! warning\n    The entry point could not be loaded: {cell(family.error or 'not a class')}\n")
    else:
        parts.append(docstring_markdown(cls.__doc__, top_level=2))

    if learners:
        parts.append("## Learners\n")
        parts.append(
            f"Registered in ``agents`` for this family (see [Agents](../{AGENTS_PAGE})): "
            + ", ".join(code(spec.name) for spec in learners)
            + ".\n"
        )
    return "\n".join(parts)


# -- multi-agent ----------------------------------------------------------------------------


@dataclass
class MultiAgentPage:
    module: str
    title: str
    page: str
    content: str
    summary: str


def multiagent_pages(package: str = "twostage_gym.multiagent") -> tuple[list[MultiAgentPage], list[str]]:
    """Pages for the ``raw_env`` of every module in ``package``, and notes on what was skipped."""
    if importlib.util.find_spec("pettingzoo") is None:
        return [], ['PettingZoo is not installed where these docs were built (`pip install -e ".[multiagent]"`).']
    try:
        pkg = importlib.import_module(package)
    except ImportError as err:
        return [], [f"`{package}` could not be imported: {cell(str(err))}"]
    pages, notes = [], []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as err:
            notes.append(f"`{name}` could not be imported: {cell(f'{type(err).__name__}: {err}')}")
            continue
        raw_env = getattr(module, "raw_env", None)
        if raw_env is None:
            continue
        pages.append(multiagent_page(module, raw_env))
    if not pages and not notes:
        notes.append(f"`{package}` has no module with a `raw_env` yet.")
    return pages, notes


def _agent_spaces(module: Any) -> list[list[str]]:
    """One row per possible agent of ``module.parallel_env()``: name, action and observation space."""
    make = getattr(module, "parallel_env", None)
    if make is None:
        return []
    try:
        env = make()
    except Exception:
        return []
    try:
        return [
            [code(a), code(repr(env.action_space(a))), code(repr(env.observation_space(a)))]
            for a in env.possible_agents
        ]
    except Exception:
        return []
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()


def multiagent_page(module: Any, raw_env: type) -> MultiAgentPage:
    short = module.__name__.rpartition(".")[2]
    base = re.sub(r"_v\d+$", "", short)
    title = f"{base.replace('_', ' ').title()} (multi-agent, {short})"
    parts = [f"# {title}\n"]
    if module.__doc__:
        parts.append(docstring_markdown(summary(module.__doc__)))
    package = module.__name__.rpartition(".")[0]
    parts.append(
        "```python\n"
        f"from {package} import {short}\n\n"
        f"env = {short}.parallel_env()  # the Parallel API; {short}.env() gives the AEC API\n"
        "```\n"
    )
    rows = _agent_spaces(module)
    if rows:
        parts.append("## Agents and spaces\n")
        parts.append(table(["agent", "action space", "observation space"], rows))
    parts.append(docstring_markdown(raw_env.__doc__, top_level=2))
    return MultiAgentPage(
        module=module.__name__,
        title=title,
        page=f"{MULTIAGENT_DIR}/{slug(short)}.md",
        content="\n".join(parts),
        summary=summary(module.__doc__),
    )


# -- agents ---------------------------------------------------------------------------------


def google_args(doc: str | None) -> dict[str, str]:
    """The ``Args:`` section of a Google-style docstring as {argument: description}."""
    result: dict[str, str] = {}
    if not doc:
        return result
    in_args, base, current = False, None, None
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip() in ("Args:", "Arguments:"):
            in_args, base, current = True, None, None
            continue
        if not in_args or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_args = False
            continue
        match = re.match(r"\s*\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
        if base is None:
            base = indent
        if indent == base and match:
            current = match.group(1)
            result[current] = match.group(2)
        elif current is not None:
            result[current] += " " + line.strip()
    return result


def agent_reference(
    families: dict[str, Any], registry: dict[tuple[str, str], Any], env_pages: dict[type, tuple[str, str]]
) -> str:
    """The generated part of the agents page: one section per family, from its package docstring
    and the registry (its names, then every learner class with its arguments).

    Args:
        families: ``agents.families``.
        registry: ``agents.registry``.
        env_pages: {environment class: (title, page)} of the generated environment pages.
    """
    parts = []
    overview = []
    for family in families.values():
        names = [name for f, name in registry if f == family.name]
        envs = [f"[{title}]({page})" for cls, (title, page) in env_pages.items() if issubclass(cls, family.envs)]
        link = f"[{family.name}](#{slug(family.name)})"
        overview.append([link, code(family.package), ", ".join(envs), str(len(names))])
    parts.append(table(["family", "package", "environments", "agents"], overview))
    for family in families.values():
        specs = [spec for (f, _), spec in registry.items() if f == family.name]
        parts.append(f"### {family.name}\n")
        package = sys.modules.get(family.package)
        if package is not None:
            parts.append(docstring_markdown(package.__doc__, top_level=4))
        rows = []
        for spec in specs:
            preset = "<br>".join(code(f"{k}={v!r}") for k, v in spec.defaults.items()) or "none"
            rows.append([code(spec.name), cell(_escape_text(spec.description)), preset])
        parts.append(table(["name", "description", "preset kwargs"], rows))
        by_factory: dict[Callable[..., Any], list[str]] = {}
        for spec in specs:
            by_factory.setdefault(spec.factory, []).append(spec.name)
        for factory, names in by_factory.items():
            parts.append(learner_section(factory, names))
    return "\n".join(parts)


def learner_section(factory: Callable[..., Any], names: list[str]) -> str:
    """The section of one learner class or factory: its summary and its arguments after ``env``."""
    qualname = f"{factory.__module__}.{factory.__qualname__}"
    registered = ", ".join(code(n) for n in names)
    parts = [f"#### {factory.__qualname__}\n", f"{code(qualname)}, registered as {registered}.\n"]
    parts.append(docstring_markdown(summary(factory.__doc__)))
    described = google_args(factory.__doc__)
    try:
        params = list(inspect.signature(factory).parameters.values())[1:]  # after ``env``
    except (TypeError, ValueError):
        params = []
    params = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if params:
        param_rows = [
            [
                code(p.name),
                "required" if p.default is inspect.Parameter.empty else code(repr(p.default)),
                cell(_escape_text(described.get(p.name, ""))),
            ]
            for p in params
        ]
        parts.append(table(["argument", "default", "description"], param_rows))
    else:
        parts.append("No arguments besides the environment.\n")
    return "\n".join(parts)


# -- reference runs -------------------------------------------------------------------------


def reference_tables(records_dir: Path, claim_names: Iterable[str]) -> tuple[str, dict[str, bytes]]:
    """The tables of ``claim_names`` made of the records in ``records_dir``, as ``reproduce --report``
    prints them, and their learning-curve figures. The horizon and the seeds are those of the records.

    Nothing is run and ``records_dir`` is left untouched (the tables are judged on a copy).

    Returns:
        The Markdown, and the figures as {file name: PNG bytes}.

    Raises:
        ValueError: the records have more than one horizon (``steps``).
    """
    from agents.bench.cli import CLAIMS  # every claim ``twostage-bench reproduce`` knows
    from agents.bench.records import read_records

    records = read_records(records_dir, warn=False)
    if not records:
        return f"!!! note\n    No records in `{records_dir.name}` yet.\n", {}
    horizons = sorted({record["steps"] for record in records})
    if len(horizons) > 1:
        raise ValueError(f"{records_dir} holds runs of {horizons} steps; a reference directory holds one horizon")
    seeds = sorted({record["seed"] for record in records})
    parts, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / records_dir.name
        shutil.copytree(records_dir, copy)
        for name in claim_names:
            claim = CLAIMS[name]
            result = claim.run(horizons[0], seeds, out=copy, progress=False, run_missing=False)
            figure = result.pop("figure", None)
            parts.append(f"### {name}\n\n```text\n{claim.render(result)}\n```\n")
            if figure is not None:
                file = f"{name}-curves.png"
                figures[file] = Path(figure).read_bytes()
                parts.append(f"![{name}: learning curves]({REFERENCE_DIR}/{file})\n")
    return "\n".join(parts), figures


# -- index and nav --------------------------------------------------------------------------


def environments_index(families: list[EnvFamily], ma_pages: list[MultiAgentPage], ma_notes: list[str]) -> str:
    parts = [
        "# Environments\n",
        "Every page in this section is generated at build time from the code: the ids and their "
        "arguments from gymnasium's registry, the rest from the environment class's docstring. "
        "Registering an id in `twostage_gym/envs/registration.py` is all it takes to document it.\n",
        "## Gymnasium environments\n",
    ]
    rows = []
    for family in families:
        module = sys.modules.get(family.cls.__module__) if family.cls is not None else None
        rows.append(
            [
                f"[{family.title}]({family.page.removeprefix(ENV_DIR + '/')})",
                "<br>".join(code(i) for i in family.ids),
                cell(docstring_markdown(summary(module.__doc__)).strip()) if module is not None else "",
            ]
        )
    parts.append(table(["family", "ids", "summary"], rows))
    parts.append("## Multi-agent environments (PettingZoo)\n")
    if ma_pages:
        parts.append(
            table(
                ["module", "summary"],
                (
                    [f"[{code(p.module)}]({p.page.removeprefix(ENV_DIR + '/')})", cell(_escape_text(p.summary))]
                    for p in ma_pages
                ),
            )
        )
    for note in ma_notes:
        parts.append(f"!!! note\n    {note}\n")
    return "\n".join(parts)


def extend_nav(config: Any, families: list[EnvFamily], ma_pages: list[MultiAgentPage]) -> None:
    """Append the generated pages to the nav section ``NAV_SECTION`` (if the nav has one)."""
    nav = config.nav if config is not None else None
    if not nav:
        return  # no explicit nav: MkDocs lists every page by itself
    for i, item in enumerate(nav):
        if isinstance(item, dict) and NAV_SECTION in item:
            entries = item[NAV_SECTION]
            entries = list(entries) if isinstance(entries, list) else [entries]
            listed = {e if isinstance(e, str) else next(iter(e.values())) for e in entries}
            entries += [{f.title: f.page} for f in families if f.page not in listed]
            if ma_pages:
                entries.append({MULTIAGENT_NAV_SECTION: [{p.title: p.page} for p in ma_pages]})
            nav[i] = {NAV_SECTION: entries}
            return


def _import_fresh(name: str) -> Any:
    """Import ``name`` anew, so that ``mkdocs serve`` picks up edited docstrings on rebuild."""
    for mod in list(sys.modules):
        if mod.split(".")[0] in _PACKAGES:
            del sys.modules[mod]
    return importlib.import_module(name)


def main() -> None:
    import mkdocs_gen_files

    twostage_gym = _import_fresh("twostage_gym")
    try:
        import agents

        registry, agent_families = dict(agents.registry), dict(agents.families)
        agents_error = None
    except Exception as err:
        registry, agent_families, agents_error = {}, {}, traceback.format_exception_only(err)[-1].strip()

    families = env_families(twostage_gym.ENV_IDS)
    for family in families:
        learners = [
            spec
            for spec in registry.values()
            if family.cls is not None and issubclass(family.cls, agent_families[spec.family].envs)
        ]
        with mkdocs_gen_files.open(family.page, "w") as fh:
            fh.write(env_page(family, learners))

    ma_pages, ma_notes = multiagent_pages()
    for page in ma_pages:
        with mkdocs_gen_files.open(page.page, "w") as fh:
            fh.write(page.content)
    with mkdocs_gen_files.open(f"{ENV_DIR}/index.md", "w") as fh:
        fh.write(environments_index(families, ma_pages, ma_notes))

    if agents_error is None:
        env_pages = {f.cls: (f.title, f.page) for f in families if f.cls is not None}
        generated = agent_reference(agent_families, registry, env_pages)
    else:
        generated = f"!!! warning\n    The agent registry could not be imported: {cell(agents_error)}\n"
    with mkdocs_gen_files.open(AGENTS_PAGE, "r") as fh:
        page = fh.read()
    if AGENT_TABLE_MARKER in page:
        page = page.replace(AGENT_TABLE_MARKER, generated)
    else:
        page += "\n## Registered agents\n\n" + generated
    with mkdocs_gen_files.open(AGENTS_PAGE, "w") as fh:
        fh.write(page)

    with mkdocs_gen_files.open(REFERENCE_PAGE, "r") as fh:
        page = fh.read()
    docs_dir = Path(mkdocs_gen_files.config.docs_dir)

    def tables(match: re.Match[str]) -> str:
        if agents_error is not None:
            return f"!!! warning\n    The bench could not be imported: {cell(agents_error)}\n"
        names = [name.strip() for name in match.group(2).split(",")]
        markdown, figures = reference_tables(docs_dir / REFERENCE_DIR / match.group(1), names)
        for file, data in figures.items():
            with mkdocs_gen_files.open(f"{REFERENCE_DIR}/{file}", "wb") as fh:
                fh.write(data)
        return markdown

    with mkdocs_gen_files.open(REFERENCE_PAGE, "w") as fh:
        fh.write(REFERENCE_MARKER.sub(tables, page))

    extend_nav(mkdocs_gen_files.config, families, ma_pages)


if __name__ in {"__main__", "<run_path>"}:  # runpy.run_path, as mkdocs-gen-files runs it
    main()
