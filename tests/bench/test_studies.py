"""Study files: parsing, validation naming the key, grid expansion, and ``run --study`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.bench.cli import main
from agents.bench.config import BenchError, RunConfig
from agents.bench.studies import STUDIES_DIR, load_study, parse_study, resolve_study, shipped_studies
from agents.bench.suites import SUITES

NOMINATORS = "TwoStage/Nominators-v0"

SMALL = """
name = "small"
title = "a small grid"
env = "TwoStage/Nominators-v0"
steps = 30
seeds = "0-2"
columns = "misspecification"

[env_kwargs]
n_items = 20
dim = 4

[sweep]
misspecification = [2, 4]

[[agents]]
name = "ucb+ucb"

[[agents]]
name = "ucb"
label = "ucb (single-stage)"
env_kwargs = { n_nominators = 1 }

[[agents]]
name = "random"

[[agents]]
name = "oracle"

[claim]
text = "oracle beats random"
better = [["oracle", "random"], ["ucb+ucb", "random"]]
"""


def _write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_studies_are_the_default_suite() -> None:
    studies = shipped_studies()
    assert set(studies) == {
        "hron2021-fig3",
        "hron2021-fig4-regret",
        "hron2021-fig4-share",
        "hron2021-prop2",
        "kiyohara2026-esr",
        "topicitem-fig3",
        "topicitem-table5",
        "xu2021-fig3",
        "zhang2024-fig1",
    }
    assert all(Path(s.path).parent == STUDIES_DIR for s in studies.values())
    suite = SUITES["default"]
    assert [s.name for s in suite.studies] == sorted(studies)
    jobs = suite.jobs()
    # Fig. 3: 2 values of rho x 10 rows; Fig. 4: 4 values of N (its two studies share the jobs);
    # Prop. 2: 2 envs x 2 trainings; ten seeds each. Kiyohara et al.: 4 methods, five seeds.
    # Topic -> item: Table 5 3 values of m x 4 rows, Fig. 3 4 rows of which 2 are Table 5's m = 5
    # cells; Xu et al.: 9 learners; Zhang et al.: 2 retrievers x 5 values of B; three seeds each.
    assert len(jobs) == (2 * 10 + 4 + 2 * 2) * 10 + 4 * 5 + (3 * 4 + 2 + 9 + 2 * 5) * 3
    assert len({job.key for job in jobs}) == len(jobs)
    reduced = suite.jobs(seeds=[3], steps=7)
    assert len(reduced) == 2 * 10 + 4 + 2 * 2 + 4 + 3 * 4 + 2 + 9 + 2 * 5
    # --steps counts rounds: a two-stage topic -> item round is two env steps.
    assert {(job.seed, job.config.steps) for job in reduced if not job.config.agent.startswith("2-")} == {(3, 7)}
    assert {(job.seed, job.config.steps) for job in reduced if job.config.agent.startswith("2-")} == {(3, 14)}


def test_shipped_studies_cover_every_agent_family() -> None:
    """Each registered family has a shipped study, of its own learners."""
    import agents
    from agents.common.registry import families, family_of

    studies = shipped_studies().values()
    covered = {family_of(env_id) for study in studies for env_id in study.envs}
    assert set(families) == covered
    assert {"nominators", "early-stage-ranker", "topic-item", "selection"} <= covered
    for study in studies:
        for env_id in study.envs:
            assert {agent.name for agent in study.agents} <= set(agents.names(family_of(env_id))), study.name


def test_topic_item_studies_are_the_claims_runs() -> None:
    """Their records are those `reproduce topicitem-table5(-full) / topicitem-fig3` judge (500 rounds, seeds 0-2)."""
    from agents.bench.claims import CLAIMS

    def claim_hashes(name: str) -> set[str]:
        return {config.config_hash for config in CLAIMS[name].configs(500).values()}

    studies = shipped_studies()
    table5, fig3 = studies["topicitem-table5"], studies["topicitem-fig3"]
    assert table5.steps == fig3.steps == CLAIMS["topicitem-table5"].rounds == 500
    assert table5.seeds == fig3.seeds == CLAIMS["topicitem-table5"].seeds == (0, 1, 2)
    assert {config.config_hash for config in table5.configs()} <= claim_hashes("topicitem-table5-full")
    m5 = {cell.config.config_hash for cell in table5.cells() if cell.column == "5"}
    assert len(m5) == 4 and m5 <= claim_hashes("topicitem-table5")
    assert {config.config_hash for config in fig3.configs()} <= claim_hashes("topicitem-fig3")
    dynamic = {cell.config.config_hash for cell in fig3.cells() if "no dynamic" not in cell.row}
    two_stage_m5 = {c.config.config_hash for c in table5.cells() if c.column == "5" and c.row.startswith("2-")}
    assert dynamic == two_stage_m5 and len(dynamic) == 2
    # Equal rounds: a 2- learner's round is two env steps; one-stage rows play the hierarchy=False env.
    cells = [*table5.cells(), *fig3.cells()]
    assert {(c.config.agent.startswith("2-"), c.config.steps) for c in cells} == {(True, 1000), (False, 500)}
    assert all(c.config.env_kwargs.get("hierarchy") is False for c in cells if not c.config.agent.startswith("2-"))
    assert table5.claim is not None and table5.claim.better == (
        ("2-n-greedy", "n-greedy"),
        ("2-s-n-galm-ucb", "s-n-galm-ucb"),
    )
    # The full-scale studies (not in the default suite) are exactly the -full claims' runs.
    for name in ("topicitem-table5-full", "topicitem-fig3-full"):
        full = resolve_study(name)
        assert name not in studies and full.seeds == CLAIMS[name].seeds
        claim = {config.config_hash for config in CLAIMS[name].configs(full.steps).values()}
        assert {config.config_hash for config in full.configs()} == claim


def test_selection_study_is_the_claims_world() -> None:
    """xu2021-fig3 plays `reproduce xu2021-fig3`'s world, learners and seeds, one whole episode a job."""
    import gymnasium as gym

    from agents.bench.claims import CLAIMS
    from agents.bench.selection_claims import BASELINES, DESIGNS

    claim, study = CLAIMS["xu2021-fig3"], shipped_studies()["xu2021-fig3"]
    assert study.env_kwargs == claim.env_kwargs and set(study.seeds) <= set(claim.seeds)
    assert {agent.name for agent in study.agents} <= set(claim.learners) | {"random"}
    assert {agent.name for agent in study.agents} >= {*DESIGNS, *BASELINES}
    env = gym.make(study.envs[0], **study.env_kwargs)
    assert study.steps == env.unwrapped.episode_steps == 150 * 12
    env.close()
    assert study.metric == "cumulative_reward"
    assert study.claim is not None
    pairs = {(design, base) for design in DESIGNS for base in BASELINES} | {("d-optimal-bayes", "d-optimal")}
    assert set(study.claim.better) == pairs


def test_steps_per_round_counts_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A row with steps_per_round k runs k T env steps and shows in the table of T, curves in rounds."""
    from agents.bench.leaderboard import study_tables

    path = _write(tmp_path, SMALL.replace('name = "random"\n', 'name = "random"\nsteps_per_round = 3\n'))
    study = load_study(path)
    assert {c.config.steps for c in study.cells() if c.row == "random"} == {90}
    assert {c.config.steps for c in study.cells() if c.row != "random"} == {30}
    assert {job.config.steps for job in study.jobs(steps=7) if job.config.agent == "random"} == {21}
    out = tmp_path / "out"
    assert main(["run", "--study", str(path), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted({r["steps"] for r in records}) == [30, 90]
    [table] = study_tables(records, study)
    assert table["steps"] == 30
    random = next(row for row in table["rows"] if row["label"] == "random")
    assert random["steps_per_round"] == 3
    assert all(cell["n_seeds"] == 3 and cell["curve"]["steps"][-1] == 30 for cell in random["cells"])
    assert all(cell["curve"]["steps"][-1] == 30 for row in table["rows"] for cell in row["cells"])
    # A record that is not a whole number of rounds is no run of the study.
    odd = [{**r, "steps": 91} if r["agent"] == "random" and r["seed"] == 0 else r for r in records]
    [table] = study_tables(odd, study)
    random = next(row for row in table["rows"] if row["label"] == "random")
    assert [cell["seeds"] for cell in random["cells"]] == [[1, 2], [1, 2]]


def test_study_configs_hash_like_the_runs_before_studies() -> None:
    """Records written by the old suite (plain RunConfigs) fall in the studies' cells."""
    fig3 = shipped_studies()["hron2021-fig3"]
    hashes = {config.config_hash for config in fig3.configs()}
    old = [
        RunConfig(NOMINATORS, "ucb+ucb", 1000, {"misspecification": 2}),
        RunConfig(NOMINATORS, "ucb", 1000, {"n_nominators": 1, "misspecification": 4}),
        RunConfig(NOMINATORS, "oracle", 1000, {"misspecification": 4}),
    ]
    assert {config.config_hash for config in old} <= hashes
    prop2 = shipped_studies()["hron2021-prop2"]
    own = RunConfig("TwoStage/Nominators-Prop2B-v0", "ucb+ucb", 5000, {}, {"alpha": 2, "nominator_training": "own"})
    assert own.config_hash in {config.config_hash for config in prop2.configs()}


def test_full_scale_table2_studies_are_the_reproduce_claims_runs() -> None:
    """Their records are the ones `reproduce kiyohara2026-table2` judges (K = 10 is the env default)."""
    from agents.bench.claims import CLAIMS

    claim = {config.config_hash for config in CLAIMS["kiyohara2026-table2"].configs(500_000).values()}
    studies = [resolve_study("kiyohara2026-table2-k"), resolve_study("kiyohara2026-table2-lsr")]
    assert {config.config_hash for study in studies for config in study.configs()} == claim
    assert len(claim) == 24 and all(len(study.jobs()) == 120 for study in studies)
    assert "kiyohara2026-table2-k" not in shipped_studies()  # not in the default suite
    k10 = [c.config for c in studies[0].cells() if c.column == "10"]
    assert {json.dumps(config.env_kwargs) for config in k10} == {"{}"}


def test_env_defaults_must_be_swept(tmp_path: Path) -> None:
    text = SMALL.replace("[sweep]", "[env_defaults]\nmisspecification = 2\n\n[sweep]")
    study = load_study(_write(tmp_path, text))
    assert {c.config.env_kwargs.get("misspecification") for c in study.cells() if c.column == "2"} == {None}
    with pytest.raises(BenchError, match=r"env_defaults\.dim: not a swept key"):
        load_study(_write(tmp_path, SMALL.replace("[sweep]", "[env_defaults]\ndim = 4\n\n[sweep]")))


def test_grid_expansion(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, SMALL))
    assert study.column_values == [2, 4]
    assert study.rows() == ["ucb+ucb", "ucb (single-stage)", "random", "oracle"]
    cells = study.cells()
    assert len(cells) == 8
    single = [c for c in cells if c.row == "ucb (single-stage)" and c.column == "4"]
    [config] = [c.config for c in single]
    assert config.env_kwargs == {"n_items": 20, "dim": 4, "misspecification": 4, "n_nominators": 1}
    assert len(study.jobs()) == 8 * 3
    assert study.claim is not None and study.claim.pairs("2") == (("oracle", "random"), ("ucb+ucb", "random"))


def test_a_second_swept_key_goes_to_the_rows(tmp_path: Path) -> None:
    text = SMALL.replace("misspecification = [2, 4]", "misspecification = [2, 4]\nn_nominators = [2, 3]")
    text = text.replace("env_kwargs = { n_nominators = 1 }", "kwargs = {}").replace('name = "ucb"', 'name = "pg+pg"')
    text = text[: text.index("[claim]")]
    study = load_study(_write(tmp_path, text))
    rows = study.rows()
    assert rows[:2] == ["ucb+ucb (n_nominators=2)", "ucb (single-stage) (n_nominators=2)"]
    assert len(rows) == 8 and len(study.cells()) == 16
    assert {c.config.env_kwargs["n_nominators"] for c in study.cells() if c.row.endswith("(n_nominators=3)")} == {3}


def test_env_columns_and_claims_by_column() -> None:
    study = shipped_studies()["hron2021-prop2"]
    assert study.column_values == ["TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0"]
    assert study.claim is not None
    assert study.claim.pairs("TwoStage/Nominators-Prop2B-v0") == (("training-on-all", "training-on-own"),)
    assert {c.config.env_id for c in study.cells() if c.column.endswith("Prop2A-v0")} == {
        "TwoStage/Nominators-Prop2A-v0"
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name = "small"\n', ""), "name: missing"),
        (lambda t: t.replace('name = "small"', 'name = "a b"'), "name: use letters"),
        (lambda t: t + "\nbogus = 1\n", "bogus: unknown key"),
        (lambda t: t.replace('seeds = "0-2"', 'seeds = "2-0"'), "seeds: bad seeds"),
        (lambda t: t.replace('seeds = "0-2"', "seeds = [1, 1]"), "seeds: expected distinct"),
        (lambda t: t.replace("steps = 30", "steps = 0"), "steps: expected a positive integer"),
        (lambda t: t.replace('columns = "misspecification"', 'columns = "dim"'), "columns: expected a swept key"),
        (lambda t: t.replace("steps = 30", 'steps = 30\nmetric = "speed"'), "metric: expected one of"),
        (lambda t: t.replace("misspecification = [2, 4]", "misspecification = []"), "sweep.misspecification"),
        (lambda t: t.replace("misspecification = [2, 4]", "misspecification = [2, 2]"), "more than once"),
        (lambda t: t.replace("misspecification = [2, 4]", "dim = [2, 4]"), "sweep.dim: is also a fixed"),
        (lambda t: t.replace('label = "ucb (single-stage)"', 'label = "random"'), "agents: two entries"),
        (lambda t: t.replace('name = "oracle"', 'nam = "oracle"'), "agents[3].nam: unknown key"),
        (lambda t: t.replace('name = "oracle"', "name = 3"), "agents[3].name: expected a non-empty string"),
        (lambda t: t.replace('name = "oracle"', 'name = "oracle"\nsteps_per_round = 0'), "agents[3].steps_per_round"),
        (lambda t: t.replace('name = "oracle"', 'name = "oracle"\nsteps_per_round = true'), "a positive integer"),
        (lambda t: t.replace('["oracle", "random"]', '["oracle", "nobody"]'), "claim.better: no row 'nobody'"),
        (lambda t: t.replace('text = "oracle beats random"\n', ""), "claim.text"),
        (lambda t: t.replace('name = "ucb+ucb"', 'name = "ucb+ucb"\nkwargs = 5'), "agents[0].kwargs: expected a table"),
        (lambda t: t + '\n[claim.by_column]\n"3" = [["oracle", "random"]]\n', "claim.by_column.3: no such column"),
    ],
)
def test_bad_study_names_the_key(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(BenchError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_study(_write(tmp_path, edit(SMALL)))


def test_bad_study_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    for argv, message in [
        (["--study", str(_write(tmp_path, "name = [", "broken.toml"))], "not valid TOML"),
        (["--study", str(tmp_path / "missing.toml")], "no such study file"),
        (["--study", "no-such-study"], "unknown study 'no-such-study'"),
        (["--study", "hron2021-prop2", "--suite", "default"], "either --suite or --study"),
        (["--study", "hron2021-prop2", "--env", NOMINATORS, "--agent", "random"], "not several"),
        (["--study", "hron2021-prop2", "--study", "hron2021-fig3"], "several studies needs --out"),
    ]:
        full = ["run", *argv, "--no-progress"] + (["--out", str(out)] if "several" not in message else [])
        assert main(full) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()  # nothing was created before the error


def test_unknown_agent_in_a_study_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, SMALL.replace('name = "ucb"\n', 'name = "nobody"\n'))
    out = tmp_path / "out"
    assert main(["run", "--study", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "unknown agent 'nobody'" in capsys.readouterr().err
    assert not (out / "records.jsonl").exists()


def test_run_study_writes_records_and_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, SMALL)
    out = tmp_path / "out"
    argv = ["run", "--study", str(path), "--out", str(out), "--workers", "1", "--no-progress", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["studies"] == ["small"] and summary["executor"] == "local"
    assert summary["ran"] == 24 and summary["failed"] == []
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 24
    assert {r["config_hash"] for r in records} == {c.config_hash for c in load_study(path).configs()}
    assert (out / "studies" / "small.toml").read_text() == SMALL  # kept for 'leaderboard DIR'
    markdown = (out / "leaderboard.md").read_text()
    assert "## small: a small grid (T = 30)" in markdown
    assert "| agent | misspecification = 2 | misspecification = 4 |" in markdown
    assert "Records outside the studies" not in markdown
    # 'leaderboard DIR' finds the kept study and rebuilds the same table; a rerun runs nothing.
    assert main(["leaderboard", str(out), "--no-plots", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [t["study"] for t in board["studies"]] == ["small"] and board["tables"] == []
    assert board["studies"][0]["claim"]["holds"] is True  # oracle and ucb+ucb beat random at T = 30
    assert main([*argv[:-1]]) == 0
    assert "0 run, 24 already in" in capsys.readouterr().out


def test_reduced_run_by_name_and_list_studies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert resolve_study("hron2021-fig4-share").metric == "nominator_share"
    assert main(["list", "studies", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {item["name"] for item in listed if item["suite"] == "default"} == set(shipped_studies())
    assert {item["name"] for item in listed if item["suite"] == "full-scale"} >= {"kiyohara2026-table2-k"}
    assert {item["jobs"] for item in listed if item["name"].startswith("hron2021-fig4")} == {40}
    out = tmp_path / "fig4"
    argv = ["run", "--study", "hron2021-fig4-share", "--seeds", "0-1", "--steps", "20", "--out", str(out)]
    assert main([*argv, "--workers", "1", "--no-progress", "--no-leaderboard"]) == 0
    assert len((out / "records.jsonl").read_text().splitlines()) == 8
    assert [p.name for p in (out / "studies").iterdir()] == ["hron2021-fig4-share.toml"]  # what ran into DIR


def test_parse_study_needs_a_table_of_agents() -> None:
    with pytest.raises(BenchError, match="agents: expected one or more"):
        parse_study({"name": "x", "title": "t", "env": NOMINATORS, "steps": 1, "seeds": "0", "agents": []})


def test_a_full_scale_study_is_kept_for_its_leaderboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table2"
    argv = ["run", "--study", "kiyohara2026-table2-k", "--seeds", "0", "--steps", "2", "--out", str(out)]
    assert main([*argv, "--workers", "1", "--no-progress", "--no-leaderboard"]) == 0
    assert (out / "studies" / "kiyohara2026-table2-k.toml").exists()
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--no-plots", "--json"]) == 0
    [table] = json.loads(capsys.readouterr().out)["studies"]
    assert table["study"] == "kiyohara2026-table2-k" and table["steps"] == 2 and table["columns"] == ["5", "10", "20"]
    assert all(cell["n_seeds"] == 1 for row in table["rows"] for cell in row["cells"])
