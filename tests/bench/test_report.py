"""``twostage-bench report``: one self-contained HTML page, checked in a real headless browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from agents.bench import report as report_module
from agents.bench.claims import CLAIMS, verdict_text
from agents.bench.cli import main
from agents.bench.leaderboard import confidence_halfwidth
from agents.bench.records import read_records
from agents.bench.report import curve_bands, report_data, write_report

ESR_KWARGS = '{"n_users": 40, "n_items": 30, "n_candidates": 3}'
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory with a reduced claim, a study's records and a batched learner's records."""
    out = tmp_path_factory.mktemp("results")
    common = ["--workers", "1", "--no-progress", "--out", str(out)]
    assert main(["reproduce", "hron2021-prop2", "--steps", "150", "--seeds", "0-2", *common]) == 0
    nominators = ["--env", "TwoStage/Nominators-v0", "--agent", "ucb+ucb", "--agent", "random"]
    assert main(["run", *nominators, "--seeds", "0-2", "--steps", "100", "--no-leaderboard", *common]) == 0
    prop2 = ["--env", "TwoStage/Nominators-Prop2A-v0", "--env", "TwoStage/Nominators-Prop2B-v0", "--agent", "ucb+ucb"]
    for training in ("own", "all"):  # the cells of the shipped study hron2021-prop2, at T = 100
        kwargs = f'{{"alpha": 2, "nominator_training": "{training}"}}'
        assert main(["run", *prop2, "--agent-kwargs", kwargs, "--seeds", "0-2", "--steps", "100", *common]) == 0
    esr = ["--env", "TwoStage/EarlyStageRanker-v0", "--agent", "ca-pg", "--env-kwargs", ESR_KWARGS]
    esr += ["--agent-kwargs", '{"batch_size": 8}', "--seeds", "0-2", "--steps", "12", "--no-leaderboard"]
    assert main(["run", *esr, *common]) == 0
    return out


@pytest.fixture(scope="module")
def page(results: Path) -> tuple[Path, dict]:
    summary = write_report(results)
    return Path(summary["file"]), summary


def test_report_command(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r" / "page.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"report written to {out}" in text and "hron2021-prop2: " in text
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_page_is_self_contained(page: tuple[Path, dict]) -> None:
    """Every figure is an inline PNG; nothing is fetched from anywhere (no http, no external file)."""
    path, summary = page
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text)
    assert "<link" not in text and "@import" not in text
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == summary["images"]
    # Six env configurations (the two Prop. 2 envs at T = 150 and at T = 100, the Nominators env and
    # the early-stage ranker) x (regret, stages), and one policy-value figure (the batched learner).
    assert summary["tables"] == 6 and summary["images"] == 2 * 6 + 1
    assert summary["studies"] == 1
    for uri in sources:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_numbers_match_the_records(results: Path, page: tuple[Path, dict]) -> None:
    """The bands, tables and verdicts on the page are those of the records and of ``reproduce --report``."""
    records = read_records(results)
    bands = curve_bands(records)
    for band_group in bands.values():
        for config_hash, band in band_group.items():
            mine = [r for r in records if r["config_hash"] == config_hash]
            final = [r["cumulative_regret"] for r in mine]
            assert band["regret"]["mean"][-1] == pytest.approx(np.mean(final))
            assert band["regret"]["ci95"][-1] == pytest.approx(confidence_halfwidth(final)[0])
            assert band["nominator_regret"] + band["ranker_regret"] == pytest.approx(np.mean(final))
    data = report_data(results)
    claim = CLAIMS["hron2021-prop2"]
    expected = claim.run(150, [0, 1, 2], 1, results, False, False, None)
    [judged] = [c for c in data["claims"] if c["claim"] == "hron2021-prop2"]
    assert judged["reproduced"] == verdict_text(expected["reproduced"])
    assert judged["result"]["cells"] == expected["cells"]
    assert page[1]["claims"]["hron2021-prop2"] == judged["reproduced"]
    text = page[0].read_text(encoding="utf-8")
    for table in data["tables"]:
        best = table["rows"][0]
        ci = "n/a" if best["ci95"] is None else f"{best['ci95']:.2f}"
        assert f"{best['mean_regret']:.2f} ± {ci}" in text


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (CI installs the distribution's chromium package)")
def test_page_renders_in_headless_chromium(page: tuple[Path, dict], tmp_path: Path) -> None:
    """A real browser loads the page: the tables are in the DOM and every image decoded (naturalWidth > 0)."""
    path, summary = page
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    command += [f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    n = summary["images"]
    assert attributes.get("data-report-ready") == "ok", attributes
    assert attributes["data-images-loaded"] == f"{n}/{n}"
    assert int(attributes["data-tables"]) == dom.count("<table")
    assert dom.count('<table class="leaderboard"') == summary["tables"]
    assert dom.count('<table class="claims"') == 1
    assert dom.count('<table class="study"') == summary["studies"]


def test_report_without_matplotlib(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "_pyplot", lambda: None)
    summary = write_report(results, tmp_path / "plain.html")
    text = (tmp_path / "plain.html").read_text(encoding="utf-8")
    assert summary["images"] == 0 and "<img" not in text
    assert "matplotlib is not installed" in text and text.count('<table class="leaderboard"') == 6


def test_report_user_errors(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such results directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no records" in capsys.readouterr().err
    assert main(["report", str(results), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["report", str(results), "--claim", "nope", "--out", str(tmp_path / "x.html")]) == 2
    assert "unknown claim 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
