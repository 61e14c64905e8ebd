"""Reproductions of Xu et al. (KDD 2021), D-optimal online experiment design for recommender selection.

* ``xu2021-kw`` (C14): at the solver's optimum max_a phi_a^T M(pi*)^{-1} phi_a = d (Kiefer-Wolfowitz),
  on random instances with k >= d; with fewer arms than dimensions (one request's 4 arms) the
  prior-regularised design's own optimality condition (the general equivalence theorem).
* ``xu2021-fig3`` (C12): cumulative recall per epoch of every learner on
  ``TwoStage/RecommenderSelection-v0``; the designs above uniform exploration, epsilon-greedy,
  MAB-TS and LinUCB, by the widest margin early; the Bayesian design at least as good as the
  frequentist one.
* ``xu2021-fig5`` (C13): the share of each epoch's requests routed to the two best recommenders
  rises faster with the design (``d-optimal``) than without it (``uniform-explore``), with a
  stacked traffic-share plot.

Each has a reduced CI-scale default and a ``-full`` version. The learners play whole episodes
(``n_epochs`` epochs of every user once); the bench reads the env's ``recall`` and ``positive``
info keys (oracle keys: the learners never see them) to score the runs. With ``--out`` each
(learner, env, seed) run is kept as a JSON file under ``<out>/selection-runs/``, so an interrupted
reproduction resumes, and the claims share runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.bench.claims import register_claim, verdict, verdict_text
from agents.bench.config import BenchError, format_seeds

__all__ = ["ENV_ID", "PAPER_RECALL", "KWClaim", "RecallClaim", "play", "plot_traffic"]

ENV_ID = "TwoStage/RecommenderSelection-v0"
SOURCE = "Xu et al., Towards the D-Optimal Online Experiment Design for Recommender Selection, KDD 2021"
PAPER_RECALL = {10: 0.036, 50: 0.162, 100: 0.269, 200: 0.422}
"""Cumulative recall of a contextual learner at epochs 10, 50, 100, 200 logged by the paper's public code (ML-1M)."""
DESIGNS = ("d-optimal", "d-optimal-bayes")
BASELINES = ("uniform-explore", "epsilon-greedy", "mab-ts", "linucb")
LEARNERS = (*DESIGNS, "d-optimal-ts", *BASELINES, "lin-ts", "random")
RUNS_DIR = "selection-runs"
DATA_DIR = Path(os.environ.get("TWOSTAGE_ML100K", Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"))
"""MovieLens-100K for the ``-full`` claims: the ``TWOSTAGE_ML100K`` environment variable, else
``../shared/data/ml-100k`` beside the project (never downloaded)."""


def play(agent: str, env_kwargs: dict[str, Any], agent_kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """One episode of ``agent``: per-epoch cumulative recall and traffic shares, and each arm's positive rate.

    Returns:
        ``recall`` (per epoch, cumulative, the env's), ``traffic`` (per epoch, the share of that
        epoch's requests served by each arm), ``positive_rate`` (per arm, the share of the episode's
        requests whose proposal by that arm was a positive: the arm's quality whatever is served),
        ``recommenders`` and ``cumulative_reward``.
    """
    import agents
    from twostage_gym.core import public_info

    env = gym.make(ENV_ID, **env_kwargs)
    learner = agents.make(agent, env, **agent_kwargs)
    obs, _ = env.reset(seed=seed)
    learner.reset(seed)
    base = env.unwrapped
    k, per_epoch = base.action_space.n, base.steps_per_epoch
    recall, traffic = [], []
    counts, positives = np.zeros(k), np.zeros(k)
    total, terminated, t = 0.0, False, 0
    while not terminated:
        action = learner.act(obs)
        next_obs, reward, terminated, _, info = env.step(action)
        learner.update(obs, action, reward, public_info(info))
        obs, t, total = next_obs, t + 1, total + float(reward)
        counts[action] += 1
        positives += np.asarray(info["positive"], dtype=np.float64)
        if t % per_epoch == 0:
            recall.append(float(info["recall"]))
            traffic.append((counts / counts.sum()).tolist())
            counts[:] = 0
    env.close()
    return {
        "recall": recall,
        "traffic": traffic,
        "positive_rate": (positives / t).tolist(),
        "recommenders": list(base.recommenders),
        "cumulative_reward": total,
    }


REFERENCES = ("random", "best-fixed-arm", "segment-best-arm", "request-oracle")
"""The headroom rows: uniform random; the best single recommender in hindsight (per seed); each
user segment served the recommender whose proposals were positive most often for that segment in
the random run (synthetic worlds, which know the segments); and the per-request oracle (a
recommender whose proposal is a test positive whenever one is, else a random one)."""


def play_reference(env_kwargs: dict[str, Any], seed: int) -> dict[str, list[float]]:
    """Per-epoch cumulative recall of the headroom policies (:data:`REFERENCES`) on the world of ``seed``.

    Each fixed recommender, uniform random (its own stream), the per-segment choice and the
    per-request oracle play one episode each. The oracles read the env's test log or the world's
    segments, which no learner may; ``best-fixed-arm`` is chosen in hindsight (an upper bound for
    a learner without context), ``segment-best-arm`` is what a learner that knows each user's
    segment could at best converge to. Without segments (custom data, MovieLens) that row is absent.
    """
    env = gym.make(ENV_ID, **env_kwargs)
    base = env.unwrapped
    k, per_epoch = base.action_space.n, base.steps_per_epoch
    rng = np.random.default_rng([seed, 0x5E1])
    env.reset(seed=seed)
    segments = base.split.data.segments
    positives = np.zeros((0 if segments is None else int(segments.max()) + 1, k))
    served = np.zeros(len(positives))

    def episode(policy: int | str, segment_arm: np.ndarray | None = None) -> list[float]:
        env.reset(seed=seed)
        recall, terminated, t = [], False, 0
        while not terminated:
            run = base.run_state
            hits = run.split.test_positive[run.user, run.proposals] & run.in_test[run.user, run.proposals]
            if policy == "random":
                arm = int(rng.integers(k))
                if segments is not None:  # each arm's proposal quality per segment, whatever is served
                    positives[segments[run.user]] += hits
                    served[segments[run.user]] += 1
            elif policy == "request-oracle":
                # The first positive proposal; else a random one (a fixed fallback would wear out its list).
                arm = int(np.argmax(hits)) if hits.any() else int(rng.integers(k))
            elif policy == "segment":
                arm = int(segment_arm[segments[run.user]])  # type: ignore[index]
            else:
                arm = int(policy)
            _, _, terminated, _, info = env.step(arm)
            t += 1
            if t % per_epoch == 0:
                recall.append(float(info["recall"]))
        return recall

    fixed = [episode(a) for a in range(k)]
    result = {"random": episode("random"), "best-fixed-arm": max(fixed, key=lambda r: r[-1])}
    if segments is not None:
        rates = positives / np.maximum(served, 1)[:, None]
        result["segment-best-arm"] = episode("segment", rates.argmax(axis=1))
    result["request-oracle"] = episode("request-oracle")
    env.close()
    return result


def paired_margin(ours: list[float], theirs: list[float]) -> tuple[float, float] | None:
    """Mean and standard error of the paired differences ``ours - theirs`` over seeds; None below 2 seeds.

    Seeds pair the runs: the same seed gives every learner the same world and the same users.
    """
    d = np.asarray(ours, dtype=float) - np.asarray(theirs, dtype=float)
    if d.size < 2:
        return None
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def _run_key(agent: str, env_kwargs: dict[str, Any], agent_kwargs: dict[str, Any], seed: int) -> str:
    text = json.dumps([agent, env_kwargs, agent_kwargs, seed], sort_keys=True)
    return f"{agent}-seed{seed}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def collect_runs(
    jobs: list[tuple[str, dict[str, Any], dict[str, Any], int]],
    workers: int,
    out: str | Path | None,
    run_missing: bool,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Play every (agent, env kwargs, agent kwargs, seed) job, reusing the runs kept in ``out``.

    Returns the runs by (agent, seed); with ``run_missing=False`` only those ``out`` holds.
    """
    folder = None if out is None else Path(out) / RUNS_DIR
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    todo = []
    for job in jobs:
        path = None if folder is None else folder / f"{_run_key(*job)}.json"
        if path is not None and path.exists():
            runs[(job[0], job[3])] = json.loads(path.read_text())
        elif run_missing:
            todo.append((job, path))
    if todo:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(play, *zip(*(job for job, _ in todo), strict=True)))
        else:
            results = [play(*job) for job, _ in todo]
        for (job, path), result in zip(todo, results, strict=True):
            runs[(job[0], job[3])] = result
            if path is not None:
                path.write_text(json.dumps(result))  # the driver alone writes, one file per run
    return runs


def _references(
    world: dict[str, Any], seeds: list[int], out: str | Path | None, run_missing: bool
) -> list[dict[str, list[float]]]:
    """The headroom policies' curves of every seed, reusing those kept in ``out`` (all seeds or none)."""
    folder = None if out is None else Path(out) / RUNS_DIR
    refs = []
    for seed in seeds:
        path = None if folder is None else folder / f"{_run_key('headroom', world, {}, seed)}.json"
        if path is not None and path.exists():
            refs.append(json.loads(path.read_text()))
        elif run_missing:
            refs.append(play_reference(world, seed))
            if path is not None:
                folder.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
                path.write_text(json.dumps(refs[-1]))
        else:
            return []
    return refs


def _mean(values: list[list[float]]) -> list[float] | None:
    return np.mean(np.asarray(values, dtype=float), axis=0).tolist() if values else None


@dataclass(frozen=True)
class RecallClaim:
    """Fig. 3 (``figure="fig3"``) or Fig. 5 (``figure="fig5"``): learners' episodes, scored per epoch.

    A comparison holds when the mean paired difference over seeds (same seed, same world and users
    for every learner) exceeds ``z`` standard errors: the seed-to-seed spread sets the threshold,
    so a claim needs at least two seeds to hold or fail (one seed leaves it pending).

    Attributes:
        name, title, source: as every claim's.
        env_kwargs: the world (``TwoStage/RecommenderSelection-v0`` kwargs).
        learners: the registered names played.
        seeds: default seeds (the paper averages ten runs).
        figure: ``"fig3"`` (recall checks) or ``"fig5"`` (traffic checks and plot).
        early_epoch: the epoch (1-based) at which "early" is judged.
        note: printed under the result.
        agent_kwargs: per learner, kwargs for ``agents.make``.
        dataset: ``"synthetic"`` or ``"ml-100k"``.
        z: standard errors of the paired difference a margin must exceed (2).
        headroom: whether to play the headroom policies (:data:`REFERENCES`) beside the learners.
    """

    name: str
    title: str
    source: str
    env_kwargs: dict[str, Any]
    learners: tuple[str, ...]
    seeds: tuple[int, ...]
    figure: str
    early_epoch: int
    note: str = ""
    agent_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset: str = "synthetic"
    z: float = 2.0
    headroom: bool = True

    def world(self) -> dict[str, Any]:
        """The env kwargs: ``env_kwargs``, plus MovieLens-100K's folder for ``dataset="ml-100k"``.

        Raises:
            BenchError: MovieLens-100K is needed and not found.
        """
        if self.dataset != "ml-100k":
            return dict(self.env_kwargs)
        if not (DATA_DIR / "u.data").is_file():
            raise BenchError(f"{self.name} needs MovieLens-100K: not found at {DATA_DIR} (set TWOSTAGE_ML100K)")
        return {"data_dir": str(DATA_DIR), **self.env_kwargs}

    def run(
        self,
        steps: int | None = None,
        seeds: list[int] | None = None,
        workers: int = 1,
        out: str | Path | None = None,
        progress: bool = True,
        run_missing: bool = True,
        save_every: int | None = None,
    ) -> dict[str, Any]:
        """Play every learner on every seed (resuming from ``out``) and judge the paper's statements.

        ``steps`` is refused: an episode is the env's ``n_epochs`` epochs (set by the claim).
        """
        if steps is not None:
            raise BenchError(f"{self.name} plays whole episodes of the env's n_epochs epochs: --steps does not apply")
        if save_every is not None:
            raise BenchError(f"{self.name} runs round-by-round learners: --checkpoint-every does not apply")
        seeds = list(self.seeds) if seeds is None else seeds
        world = self.world()
        jobs = [(a, world, self.agent_kwargs.get(a, {}), s) for a in self.learners for s in seeds]
        runs = collect_runs(jobs, workers, out, run_missing)
        learners = {}
        for agent in self.learners:
            got = [runs[(agent, s)] for s in seeds if (agent, s) in runs]
            curves = np.asarray([r["recall"] for r in got], dtype=float)
            learners[agent] = {
                "n_seeds": len(got),
                "recall": _mean([r["recall"] for r in got]),
                "recall_sd": curves.std(axis=0, ddof=1).tolist() if len(got) > 1 else None,
                "recall_per_seed": curves.tolist(),
                "final_recall": [r["recall"][-1] for r in got],
                "traffic": _mean([r["traffic"] for r in got]),
                "traffic_per_seed": [r["traffic"] for r in got],
                "positive_rate": _mean([r["positive_rate"] for r in got]),
            }
        headroom = None
        refs = _references(world, seeds, out, run_missing) if self.headroom else []
        if refs:
            headroom = {}
            for name in (n for n in REFERENCES if n in refs[0]):
                curves = np.asarray([r[name] for r in refs], dtype=float)
                headroom[name] = {
                    "recall": curves.mean(axis=0).tolist(),
                    "recall_sd": curves.std(axis=0, ddof=1).tolist() if len(refs) > 1 else None,
                    "final_recall": curves[:, -1].tolist(),
                }
        recommenders = next(iter(runs.values()))["recommenders"] if runs else []
        checks = self._fig3_checks(learners) if self.figure == "fig3" else self._fig5_checks(learners)
        result = {
            "claim": self.name,
            "title": self.title,
            "source": self.source,
            "env_kwargs": world,
            "seeds": seeds,
            "steps": None,
            "recommenders": recommenders,
            "learners": learners,
            "headroom": headroom,
            "z": self.z,
            "checks": checks,
            "reproduced": verdict(c["holds"] for c in checks),
        }
        if self.figure == "fig5" and out is not None:
            result["figure"] = plot_traffic(result, Path(out))
        return result

    def _early(self, curve: list[float]) -> float:
        return curve[min(self.early_epoch, len(curve)) - 1]

    def _beats(self, ours: list[float], theirs: list[float], tolerance: bool = False) -> tuple[bool | None, Any]:
        """Whether ``ours`` is above ``theirs`` by more than ``z`` paired standard errors (or, with
        ``tolerance``, not below them by more than that); the (mean, se) beside it."""
        margin = paired_margin(ours, theirs)
        if margin is None:
            return None, None
        mean, se = margin
        return (mean >= -self.z * se if tolerance else mean > self.z * se), [mean, se]

    def _fig3_checks(self, learners: dict[str, Any]) -> list[dict[str, Any]]:
        def curves(agent: str) -> np.ndarray | None:
            if agent not in learners or not learners[agent]["recall_per_seed"]:
                return None
            return np.asarray(learners[agent]["recall_per_seed"], dtype=float)

        n_common = min((len(v["recall_per_seed"]) for v in learners.values()), default=0)
        early = None
        checks = []
        for design in DESIGNS:
            mine = curves(design)
            for base in BASELINES:
                theirs = curves(base)
                check: dict[str, Any] = {
                    "check": f"{design} above {base} by > {self.z:g} paired s.e. at epoch {self.early_epoch} and at "
                    "the end",
                    "holds": None,
                }
                if mine is not None and theirs is not None and n_common:
                    early = min(self.early_epoch, mine.shape[1]) - 1
                    at_early, m_early = self._beats(mine[:n_common, early], theirs[:n_common, early])
                    at_end, m_end = self._beats(mine[:n_common, -1], theirs[:n_common, -1])
                    check["margins"] = None if m_early is None else {"early": m_early, "final": m_end}
                    check["holds"] = None if at_early is None else bool(at_early and at_end)
                checks.append(check)
            rivals = [curves(b) for b in BASELINES]
            holds, margins = None, None
            if mine is not None and all(r is not None for r in rivals):
                best_early = max(self._early(r.mean(axis=0).tolist()) for r in rivals)  # type: ignore[union-attr]
                best_final = max(float(r.mean(axis=0)[-1]) for r in rivals)  # type: ignore[union-attr]
                mean = mine.mean(axis=0).tolist()
                margins = (self._early(mean) / best_early - 1.0, mean[-1] / best_final - 1.0)
                holds = margins[0] > 0 and margins[0] > margins[1]
            checks.append(
                {
                    "check": f"{design}'s relative margin over the best of those baselines is positive and wider at "
                    f"epoch {self.early_epoch} than at the end",
                    "holds": holds,
                    "relative_margins": margins,
                }
            )
        bayes, freq = curves("d-optimal-bayes"), curves("d-optimal")
        check = {
            "check": f"d-optimal-bayes at least as good as d-optimal (final recall, within {self.z:g} paired s.e.)",
            "holds": None,
        }
        if bayes is not None and freq is not None and n_common:
            holds, margin = self._beats(bayes[:n_common, -1], freq[:n_common, -1], tolerance=True)
            check.update(holds=holds, margins=None if margin is None else {"final": margin})
        checks.append(check)
        return checks

    def _fig5_checks(self, learners: dict[str, Any]) -> list[dict[str, Any]]:
        design, without = learners.get("d-optimal"), learners.get("uniform-explore")
        what = "share of requests to the two best recommenders"
        if not design or not without or design["traffic"] is None or without["traffic"] is None:
            return [{"check": f"{what} rises faster with the design", "holds": None}]
        quality = np.mean([design["positive_rate"], without["positive_rate"]], axis=0)
        best = np.argsort(-quality, kind="stable")[:2]
        n = min(len(design["traffic_per_seed"]), len(without["traffic_per_seed"]))
        per_seed = {
            name: np.asarray(run["traffic_per_seed"][:n], dtype=float)[:, :, best].sum(axis=2)
            for name, run in (("d", design), ("u", without))
        }  # (seeds, epochs): each seed's share to the two best arms per epoch
        early = slice(0, max(1, self.early_epoch))
        holds, margin = self._beats(per_seed["d"][:, early].mean(axis=1), per_seed["u"][:, early].mean(axis=1))
        return [
            {
                "check": f"{what} (arms {sorted(best.tolist())}), mean over epochs 1-{self.early_epoch}: d-optimal "
                f"above uniform-explore by > {self.z:g} paired s.e.",
                "holds": holds,
                "margins": None if margin is None else {"early": margin},
                "best_arms": sorted(best.tolist()),
                "early_share": {
                    "d-optimal": float(per_seed["d"][:, early].mean()),
                    "uniform-explore": float(per_seed["u"][:, early].mean()),
                },
                "share_per_epoch": {
                    "d-optimal": per_seed["d"].mean(axis=0).tolist(),
                    "uniform-explore": per_seed["u"].mean(axis=0).tolist(),
                },
            }
        ]

    def render(self, result: dict[str, Any]) -> str:
        """Per learner: cumulative recall per epoch (mean and s.d. over seeds); the headroom rows; the checks."""
        lines = [
            f"{result['claim']}: {result['title']}",
            f"  {result['source']}",
            f"  ours: {ENV_ID} {result['env_kwargs']}, mean (s.d.) over seeds {format_seeds(result['seeds'])}",
            "",
        ]
        n_epochs = max((len(v["recall"]) for v in result["learners"].values() if v["recall"]), default=0)
        shown = sorted({1, 3, self.early_epoch, n_epochs // 2, n_epochs} - {0})
        shown = [e for e in shown if e <= n_epochs]

        def row(name: str, v: dict[str, Any]) -> str:
            sd = v.get("recall_sd")
            cells = " ".join(f"{v['recall'][e - 1]:>7.4f}" + (f" ({sd[e - 1]:.4f})" if sd else " " * 9) for e in shown)
            return f"  {name:<20} {cells}"

        lines.append(f"  {'learner':<20} " + " ".join(f"{'ep ' + str(e):>16}" for e in shown))
        for agent, v in result["learners"].items():
            lines.append(f"  {agent:<20} pending" if v["recall"] is None else row(agent, v))
        if result.get("headroom"):
            lines += ["", "  headroom (policies that read the test log or choose in hindsight; no learner can):"]
            lines += [row(name, v) for name, v in result["headroom"].items()]
        reference = [e for e in PAPER_RECALL if e <= n_epochs]
        if self.figure == "fig3" and reference:
            lines += ["", "  at the paper's logged epochs (its public code, a contextual learner, MovieLens-1M):"]
            lines.append(f"  {'':<20} " + " ".join(f"{'ep ' + str(e):>8}" for e in reference))
            lines.append(f"  {'paper':<20} " + " ".join(f"{PAPER_RECALL[e]:>8.3f}" for e in reference))
            for agent, v in result["learners"].items():
                if v["recall"] is not None:
                    lines.append(f"  {agent:<20} " + " ".join(f"{v['recall'][e - 1]:>8.3f}" for e in reference))
        if self.figure == "fig5":
            lines += ["", "  traffic share per epoch (mean over seeds), arms " + ", ".join(result["recommenders"])]
            for agent, v in result["learners"].items():
                if v["traffic"] is not None:
                    first, last = v["traffic"][0], v["traffic"][-1]
                    lines.append(
                        f"  {agent:<20} epoch 1 {' '.join(f'{x:.2f}' for x in first)}   "
                        f"epoch {len(v['traffic'])} {' '.join(f'{x:.2f}' for x in last)}"
                    )
        lines += ["", "  ours     check"]
        for check in result["checks"]:
            extra = ""
            if check.get("margins"):
                extra = " (" + ", ".join(f"{k} {m:+.4f} s.e. {se:.4f}" for k, (m, se) in check["margins"].items()) + ")"
            if check.get("relative_margins") is not None:
                early, final = check["relative_margins"]
                extra = f" (early {early:+.1%}, final {final:+.1%})"
            if check.get("early_share") is not None:
                extra += " (" + ", ".join(f"{k} {v:.3f}" for k, v in check["early_share"].items()) + ")"
            lines.append(f"  {verdict_text(check['holds']):<8} {check['check']}{extra}")
        lines.append(f"  reproduced: {verdict_text(result['reproduced'])}")
        if result.get("figure"):
            lines += ["", f"  traffic shares: {result['figure']}"]
        if self.note:
            lines += [""] + [f"  {line}" for line in self.note.splitlines()]
        return "\n".join(lines)


def plot_traffic(result: dict[str, Any], out: Path) -> str | None:
    """Fig. 5: stacked per-epoch traffic shares of each recommender, with and without the design; the PNG path.

    None where matplotlib is missing or nothing has run.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(a, v) for a, v in result["learners"].items() if v["traffic"] is not None]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, (agent, v) in zip(axes[0], panels, strict=True):
        shares = np.asarray(v["traffic"], dtype=float)
        epochs = np.arange(1, len(shares) + 1)
        ax.stackplot(epochs, shares.T, labels=result["recommenders"], alpha=0.85)
        ax.set_title(agent, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_xlim(1, max(1, len(shares)))
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of the epoch's requests")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result['claim']}: mean over seeds {format_seeds(result['seeds'])}", fontsize=9)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result['claim']}-traffic.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# -- C14: the Kiefer-Wolfowitz identity ----------------------------------------------------------


@dataclass(frozen=True)
class KWClaim:
    """C14: the solver's optimum meets the Kiefer-Wolfowitz identity (k >= d) or the regularised condition (k < d).

    Each (k, d, seed) instance has standard normal features; a k < d instance gets the prior
    A = B B^T / (2d) + 0.1 I (B standard normal, d x 2d), the shape of the learners' history prior.
    """

    name: str
    title: str
    source: str
    sizes: tuple[tuple[int, int], ...]
    seeds: tuple[int, ...]
    eps: float = 1e-4
    note: str = ""

    def run(
        self,
        steps: int | None = None,
        seeds: list[int] | None = None,
        workers: int = 1,
        out: str | Path | None = None,
        progress: bool = True,
        run_missing: bool = True,
        save_every: int | None = None,
    ) -> dict[str, Any]:
        """Solve every instance; ``steps`` does not apply. ``run_missing=False`` solves nothing (pending)."""
        from agents.selection.design import d_optimal_design, design_gradient

        if steps is not None:
            raise BenchError(f"{self.name} solves designs over its seeds' instances: --steps does not apply")
        if save_every is not None:
            raise BenchError(f"{self.name} solves designs: --checkpoint-every does not apply")
        seeds = list(self.seeds) if seeds is None else seeds
        cells = []
        for k, d in self.sizes:
            worst_excess, worst_mean_dev, iterations = 0.0, 0.0, []
            holds: bool | None = True
            if not run_missing:
                holds = None
            for seed in seeds if run_missing else []:
                rng = np.random.default_rng([k, d, seed])
                Phi = rng.standard_normal((k, d))
                prior = None
                if k < d:
                    B = rng.standard_normal((d, 2 * d))
                    prior = B @ B.T / (2 * d) + 0.1 * np.eye(d)
                result = d_optimal_design(Phi, prior=prior, eps=self.eps)
                g = design_gradient(Phi, result.pi, prior)  # afresh, not the solver's running values
                mean = float(result.pi @ g)
                excess = float(g.max() / mean - 1.0)  # 0 at the optimum; <= eps by the certificate
                mean_dev = abs(mean / d - 1.0) if prior is None else 0.0  # sum pi g = d (no prior)
                worst_excess = max(worst_excess, excess)
                worst_mean_dev = max(worst_mean_dev, mean_dev)
                iterations.append(result.iterations)
                holds = bool(holds and result.converged and -1e-9 <= excess <= self.eps and mean_dev <= 1e-9)
            cells.append(
                {
                    "k": k,
                    "d": d,
                    "prior": k < d,
                    "max_relative_excess": worst_excess if run_missing else None,
                    "max_mean_deviation": worst_mean_dev if run_missing else None,
                    "iterations": iterations,
                    "holds": holds,
                }
            )
        return {
            "claim": self.name,
            "title": self.title,
            "source": self.source,
            "seeds": seeds,
            "steps": None,
            "eps": self.eps,
            "cells": cells,
            "reproduced": verdict(c["holds"] for c in cells),
        }

    def render(self, result: dict[str, Any]) -> str:
        """Per (k, d): the largest max_a g_a / sum_a pi g_a - 1 over seeds, against the tolerance."""
        lines = [
            f"{result['claim']}: {result['title']}",
            f"  {result['source']}",
            f"  seeds {format_seeds(result['seeds'])}, tolerance eps = {result['eps']:g}",
            "",
            f"  {'k':>6} {'d':>5} {'design':<12} {'max_a g_a / d - 1':>20} {'|sum pi g / d - 1|':>20} "
            f"{'iterations':>12}  holds",
        ]
        for c in result["cells"]:
            what = "prior" if c["prior"] else "plain (KW)"
            excess = "pending" if c["max_relative_excess"] is None else f"{c['max_relative_excess']:.2e}"
            dev = "-" if c["prior"] or c["max_mean_deviation"] is None else f"{c['max_mean_deviation']:.1e}"
            its = f"{min(c['iterations'])}-{max(c['iterations'])}" if c["iterations"] else "-"
            lines.append(
                f"  {c['k']:>6} {c['d']:>5} {what:<12} {excess:>20} {dev:>20} {its:>12}  {verdict_text(c['holds'])}"
            )
        lines.append(f"  reproduced: {verdict_text(result['reproduced'])}")
        if self.note:
            lines += [""] + [f"  {line}" for line in self.note.splitlines()]
        return "\n".join(lines)


_KW_NOTE = (
    "Kiefer-Wolfowitz: at the D-optimal pi*, max_a phi_a^T M(pi*)^{-1} phi_a = d = sum_a pi*(a) g_a. The\n"
    "column max_a g_a / d - 1 is recomputed afresh at the solver's design (for a prior: max_a g_a /\n"
    "sum_a pi(a) g_a - 1, the general equivalence theorem's condition with A + M(pi)); it must lie in\n"
    "[0, eps]. A k < d instance (like one request's 4 arms) has no plain design: log det M(pi) = -inf."
)
register_claim(
    KWClaim(
        name="xu2021-kw",
        title="the solver's optimum meets the Kiefer-Wolfowitz identity (k >= d) or its regularised form (k < d)",
        source=f"{SOURCE}, Theorem 1 (Sec. 4.1) and Eq. 6",
        sizes=((4, 6), (4, 30), (20, 6), (100, 10), (200, 30), (500, 50)),
        seeds=(0, 1, 2),
        note=f"{_KW_NOTE}\nReduced scale: 6 sizes, 3 seeds (a few seconds); -full: 11 sizes up to k = 1000, d = 100.",
    )
)
register_claim(
    KWClaim(
        name="xu2021-kw-full",
        title="the solver's optimum meets the Kiefer-Wolfowitz identity (k >= d) or its regularised form (k < d)",
        source=f"{SOURCE}, Theorem 1 (Sec. 4.1) and Eq. 6",
        sizes=(
            (4, 6),
            (4, 50),
            (4, 100),
            (10, 100),
            (100, 6),
            (100, 50),
            (100, 100),
            (1000, 6),
            (1000, 50),
            (1000, 100),
            (2000, 100),
        ),
        seeds=tuple(range(10)),
        note=f"{_KW_NOTE}\nFull scale: 11 sizes, 10 seeds (estimated under a minute on one core).",
    )
)

_REDUCED_WORLD = {"n_users": 150, "n_items": 300, "n_epochs": 12}
_SCALE_REDUCED = (
    "Reduced scale: the default synthetic world (segment_effect 1.0, the knob's maximum; 4 segments) with 150 users\n"
    "and 300 items, 12 epochs (1,800 requests), seeds 0-4; a margin must exceed 2 paired standard errors over seeds."
)
_HEADROOM_NOTE = (
    "Headroom, measured on this world before any learner was run (seeds 0-9, final cumulative recall, mean +-\n"
    "s.d.): uniform random 0.158 +- 0.006; the best single recommender in hindsight 0.158 +- 0.006 (user-CF in 10\n"
    "of 10 seeds); each segment's best recommender (chosen from a uniform run) 0.168 +- 0.014 (+0.010 +- 0.013 over\n"
    "the best single one: the uniform run's choice errs on some seeds); each segment served its best recommender in\n"
    "hindsight +0.022 +- 0.007 (sum over segments of fixed-recommender episodes); the per-request oracle 0.204 +-\n"
    "0.010. Best per segment: user-CF (mainstream), item-CF (item-cluster), MF (community), none clearly\n"
    "(latent-factor). With segment_effect 0 (all users alike) the per-segment gain vanishes: +0.002 +- 0.002 in\n"
    "hindsight, -0.002 +- 0.010 from a uniform run. Context can pay here, about 0.01-0.02 of recall; serving one\n"
    "recommender to a user wears out the head of its list, which is why uniform mixing is as good as the best\n"
    "single one. Measured, seeds 0-9: every learner's final recall 0.159-0.166 (lin-ts highest, +0.002 over\n"
    "uniform-explore, paired s.e. 0.002; the designs -0.003, s.e. 0.002; random 0.160): no learner exploits the\n"
    "per-segment headroom."
)
_SCALE_FULL = (
    "Full scale: MovieLens-100K (TWOSTAGE_ML100K, else ../shared/data/ml-100k), {epochs} epochs of its 943 users,\n"
    "seeds 0-9 (the paper's ten runs). Measured: one 200-epoch run about {minutes} minutes on one core, so\n"
    "{runs} runs take an estimated {hours} hours: a cluster job (--workers, --out to resume)."
)
_FIG3_NOTE = (
    "Paper (Fig. 3, MovieLens-1M, 4 candidates): the optimal designs above every bandit baseline 'by significant\n"
    "margins', most clearly early; Bayesian slightly above frequentist. Its public code logs a contextual learner's\n"
    "cumulative recall of " + ", ".join(f"{v} at epoch {e}" for e, v in PAPER_RECALL.items()) + " on MovieLens-1M."
)
_FIG5_NOTE = (
    "Paper (Fig. 5, frequentist): with the design the traffic concentrates on the two promising candidates\n"
    "(MF and popularity) more quickly than without it. 'Best' here: the two arms whose proposals were\n"
    "positive most often over the runs (the env's oracle 'positive' key, read by the bench only)."
)
register_claim(
    RecallClaim(
        name="xu2021-fig3",
        title="cumulative recall per epoch: optimal designs against the bandit baselines",
        source=f"{SOURCE}, Fig. 3 (Sec. 5.1)",
        env_kwargs=_REDUCED_WORLD,
        learners=LEARNERS,
        seeds=(0, 1, 2, 3, 4),
        figure="fig3",
        early_epoch=3,
        note=f"{_FIG3_NOTE}\n{_SCALE_REDUCED}\n{_HEADROOM_NOTE}",
    )
)
register_claim(
    RecallClaim(
        name="xu2021-fig3-full",
        title="cumulative recall per epoch on MovieLens-100K: optimal designs against the bandit baselines",
        source=f"{SOURCE}, Fig. 3 (Sec. 5.1)",
        env_kwargs={"n_epochs": 200},
        learners=LEARNERS,
        seeds=tuple(range(10)),
        figure="fig3",
        early_epoch=10,
        dataset="ml-100k",
        note=f"{_FIG3_NOTE}\n"
        + _SCALE_FULL.format(epochs=200, minutes=3, runs=100, hours=5)
        + "\nThe headroom rows add six learner-free episodes a seed (MovieLens has no segments: no per-segment row).",
    )
)
register_claim(
    RecallClaim(
        name="xu2021-fig5",
        title="traffic concentrates on the best recommenders faster with the design than without",
        source=f"{SOURCE}, Fig. 5 (Sec. 5.1)",
        env_kwargs=_REDUCED_WORLD,
        learners=("d-optimal", "uniform-explore"),
        seeds=(0, 1, 2, 3, 4),
        figure="fig5",
        early_epoch=6,
        note=f"{_FIG5_NOTE}\n{_SCALE_REDUCED}\nThe headroom rows are xu2021-fig3's (same world, same seeds).",
        headroom=False,
    )
)
register_claim(
    RecallClaim(
        name="xu2021-fig5-full",
        title="traffic concentrates on the best recommenders faster with the design than without (MovieLens-100K)",
        source=f"{SOURCE}, Fig. 5 (Sec. 5.1)",
        env_kwargs={"n_epochs": 200},
        learners=("d-optimal", "uniform-explore"),
        seeds=tuple(range(10)),
        figure="fig5",
        early_epoch=50,
        dataset="ml-100k",
        headroom=False,
        note=f"{_FIG5_NOTE}\n" + _SCALE_FULL.format(epochs=200, minutes=3, runs=20, hours=1),
    )
)
