"""``twostage-bench list``, ``perf`` and ``reproduce``, and the installed entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import agents
import twostage_gym
from agents.bench.claims import CLAIMS
from agents.bench.cli import main


def test_list_agents_and_envs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "agents"]) == 0
    out = capsys.readouterr().out
    for spec in agents.registry.values():
        assert spec.name in out and spec.family in out
        assert spec.description in out
    assert main(["list", "envs"]) == 0
    out = capsys.readouterr().out
    for env_id in twostage_gym.ENV_IDS:
        assert env_id in out


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "agents", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["family"], a["name"]) for a in listed] == list(agents.registry)
    assert {"name", "family", "description"} <= set(listed[0])
    assert main(["list", "envs", "--json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == list(twostage_gym.ENV_IDS)


def test_perf_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["perf", "--quick", "--json", "--case", "env_step", "--case", "vector_env", "--case", "agent_cost"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quick"] is True and report["version"] == twostage_gym.__version__
    cases = report["cases"]
    assert set(cases) == {"env_step", "vector_env", "agent_cost"}
    for setting in ("defaults", "n_items=10000,dim=80"):
        keys = {"step_us", "steps_per_s", "draw_us", "ratio", "target_ratio", "met"}
        assert keys <= set(cases["env_step"][setting])
    assert cases["env_step"]["defaults"]["target_ratio"] == 2.5
    assert cases["env_step"]["n_items=10000,dim=80"]["target_ratio"] == 1.5
    for mode in ("vector_entry_point", "sync"):
        assert cases["vector_env"][mode]["sub_env_steps_per_s"] > 0
    assert cases["vector_env"]["num_envs"] == 64 and cases["vector_env"]["speedup"] > 0
    assert cases["agent_cost"]["ms_per_round"] > 0


def test_reproduce_prop2_reduced(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["reproduce", "hron2021-prop2", "--steps", "300", "--seeds", "0-1", "--workers", "2", "--no-progress"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["claim"] == "hron2021-prop2" and result["steps"] == 300 and result["seeds"] == [0, 1]
    cells = {(c["row"], c["column"]): c for c in result["cells"]}
    prop2 = ("TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0")
    assert set(cells) == {(env, mode) for env in prop2 for mode in ("own", "all")}
    for cell in cells.values():
        assert len(cell["regret_per_step"]) == 2
        assert cell["paper"] and cell["observed"] in ("sublinear", "linear")
    assert isinstance(result["reproduced"], bool)


def test_reproduce_text_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["reproduce", "hron2021-deadlock", "--steps", "100", "--seeds", "0", "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "median regret/T" in out and "paper" in out and "stuck" in out
    # --report on a directory with no records yet: every cell pending, nothing run.
    assert main([*argv, "--out", str(tmp_path), "--report", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reproduced"] is None and all(c["agrees"] is None for c in report["cells"])
    assert not (tmp_path / "records.jsonl").exists()
    assert main([*argv, "--out", str(tmp_path), "--report"]) == 0
    assert "reproduced: pending (0/4 cells agree)" in capsys.readouterr().out
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in CLAIMS)
    assert main(["reproduce", "no-such-claim"]) == 2
    assert "hron2021-prop2" in capsys.readouterr().err


def test_usage_errors_return_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["list", "nothing"]) == 2
    assert main(["run", "--steps", "0"]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()


def test_installed_entry_point() -> None:
    exe = shutil.which("twostage-bench")
    if exe is None:
        pytest.skip("the twostage-bench console script is not installed")
    done = subprocess.run([exe, "list", "agents", "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert [(a["family"], a["name"]) for a in json.loads(done.stdout)] == list(agents.registry)
    bad = subprocess.run([exe, "run", "--agent", "nope", "--env", "x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error" in bad.stderr


def test_perf_esr_cases_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    assert main(["perf", "--quick", "--json", "--case", "esr_gradient_step", "--case", "esr_env"]) == 0
    cases = json.loads(capsys.readouterr().out)["cases"]
    ms = cases["esr_gradient_step"]["ms_per_step"]
    for method in ("v-pg", "v-pg-swr", "ca-pg", "ca-pg-swr"):
        assert ms[f"{method} K=10 M=1"] > 0 and ms[f"{method} K=10 M=5"] > 0
    assert ms["ca-pg-swr K=200 M=1"] > 0 and cases["esr_gradient_step"]["hours_500k_ca_pg"] > 0
    assert set(cases["esr_env"]["seconds_per_batch"]) == {"1000", "1000000"}
