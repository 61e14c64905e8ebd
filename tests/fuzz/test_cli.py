"""Fuzzing ``twostage-bench``: every command line with a bad part exits 2 with one line, no traceback.

Each drawn command line is valid but for one part, drawn from the bad values of that option, so
it never starts real work: the bench must refuse it up front (exit code 2, one line on stderr).
Env ids, agent names and their keyword arguments come from the registries, so a new env or
agent is fuzzed by registering.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agents
import twostage_gym
from agents.bench.cli import main
from tests.fuzz.strategies import family_env_ids

pytestmark = pytest.mark.fuzz

ENV_IDS = list(twostage_gym.ENV_IDS)

BAD_SEEDS = ["5-2", "a", "", "-1", "1-", "-", "1,,2", "0-", "x-3", "1.5", "0-1e3", " "]
BAD_COUNTS = ["0", "-3", "x", "1.5", "", "1e3", "nan"]
BAD_JSON = ["{n_items: 3}", "[1, 2]", "3", '"x"', "null", "{", "{'a': 1}", ""]
BAD_ENV_KWARGS = [
    {"n_items": -1},
    {"n_items": 0},
    {"n_items": 10**13},
    {"n_items": True},
    {"n_items": "100"},
    {"dim": 2.5},
    {"noise_std": "0.1"},
    {"no_such_argument": 1},
    {"render_mode": "human"},
]


RUN_PARTS = ["env", "agent", "seeds", "steps", "workers", "checkpoint-every", "env-kwargs", "agent-kwargs"]
RUN_PARTS += ["out", "mix"]


def _agent_pairs() -> list[tuple[str, str]]:
    """One (env id, agent name) pair per learner that builds on that id with defaults."""
    pairs = []
    for family, name in agents.registry:
        env_id = family_env_ids(family)[0]
        pairs.append((env_id, name))
    return pairs


PAIRS = _agent_pairs()


@st.composite
def bad_run(draw: st.DrawFn, out: Path) -> list[str]:
    """``run`` with exactly one bad part."""
    env_id, agent = draw(st.sampled_from(PAIRS))
    good = ["run", "--env", env_id, "--agent", agent, "--steps", "2", "--seeds", "0", "--out", str(out)]
    good += ["--workers", "1", "--no-progress", "--no-leaderboard"]
    part = draw(st.sampled_from(RUN_PARTS))
    if part == "env":
        return [*good, "--env", draw(st.sampled_from(["TwoStage/Nope-v0", "CartPole-v1", "", "twostage"]))]
    if part == "agent":
        others = [n for n in agents.names() if n not in agents.names(agents.family_of(env_id))]
        return [*good, "--agent", draw(st.sampled_from(["nope", "", "UCB+UCB", *others]))]
    if part in ("seeds", "steps", "workers", "checkpoint-every"):
        values = BAD_SEEDS if part == "seeds" else BAD_COUNTS
        return [*good, f"--{part}", draw(st.sampled_from(values))]
    if part == "env-kwargs":
        bad = draw(st.sampled_from(BAD_JSON + [json.dumps(k) for k in BAD_ENV_KWARGS]))
        return [*good, "--env-kwargs", bad]
    if part == "agent-kwargs":
        spec = agents.registry[(agents.family_of(env_id), agent)]
        presets = [json.dumps({k: v}) for k, v in spec.defaults.items()]
        bad = draw(st.sampled_from([*BAD_JSON, '{"no_such_argument": 1}', *presets]))
        return [*good, "--agent-kwargs", bad]
    if part == "out":
        file = out.parent / "a-file"
        file.write_text("not a directory")
        return [*good, "--out", str(draw(st.sampled_from([file, file / "below"])))]
    return ["run", "--suite", "default", "--env", env_id, "--agent", agent, "--out", str(out)]


@st.composite
def bad_other(draw: st.DrawFn, out: Path) -> list[str]:
    """Another command with one bad part."""
    return draw(
        st.sampled_from(
            [
                ["leaderboard", str(out / "missing")],
                ["reproduce", "no-such-claim"],
                ["reproduce", "hron2021-prop2", "--steps", "0"],
                ["reproduce", "hron2021-prop2", "--seeds", "9-1"],
                ["reproduce", "hron2021-prop2", "--checkpoint-every", "100"],  # no --out to save in
                ["perf", "--case", "no-such-case"],
                ["list", "nothing"],
                ["no-such-command"],
                [],
                ["run", "--unknown-flag"],
            ]
        )
    )


def _check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, f"{argv}: exit {code}, stderr {err!r}"
    assert "Traceback" not in err
    # One line saying what is wrong (argparse puts its usage, possibly wrapped, before it).
    said = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(said) == 1 and "error" in said[0], (argv, err)


def test_run_with_one_bad_part_exits_2(tmp_path_factory: pytest.TempPathFactory, capsys) -> None:
    @given(st.data())
    def cli_run(data: st.DataObject) -> None:
        out = tmp_path_factory.mktemp("cli") / "out"
        argv = data.draw(bad_run(out), label="argv")
        _check(argv, capsys)
        assert not (out / "records.jsonl").exists() or not (out / "records.jsonl").read_text().strip(), argv

    cli_run()


def test_other_commands_with_one_bad_part_exit_2(tmp_path: Path, capsys) -> None:
    @given(bad_other(tmp_path))
    def cli_other_commands(argv: list[str]) -> None:
        _check(argv, capsys)

    cli_other_commands()
