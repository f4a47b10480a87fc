"""Pairwise votes -> a ranking: Bradley–Terry strengths, win rates, confidence intervals, a 1–5 scale.

    from kdsharp.evaluate.votes import Vote, rank_votes, ranking_markdown
    ranking = rank_votes([Vote("fast", "input", "A"), Vote("teacher", "fast", "same"), ...])
    print(ranking_markdown(ranking))

A vote says which of two methods looked better on the same crop (``"A"``: the first, ``"B"``:
the second, ``"same"``: neither). A tie counts as half a win for each side. The Bradley–Terry
model gives each method a strength ``s`` (log-odds scale, mean 0) such that method ``i`` beats
``j`` with probability ``1 / (1 + exp(s_j - s_i))``; a weak Gaussian prior (:data:`PRIOR`) keeps
a method that won every comparison finite. The 1–5 score is ``1 + 4 p`` where ``p`` is the
probability, under the fitted model, of beating a method drawn from the others at random: 3 means
as good as the average of the others, 5 better than all of them every time. It is a relative
scale among the methods voted on, not an absolute opinion score. Intervals are percentile
bootstrap intervals over the votes (Wilson intervals for the win rates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

PRIOR = 0.1  # L2 penalty on the strengths (a Gaussian prior of variance 10)
CHOICES = ("A", "B", "same")


@dataclass(frozen=True)
class Vote:
    """One comparison: ``a`` was shown as A, ``b`` as B, ``choice`` is ``'A'``, ``'B'`` or ``'same'``."""

    a: str
    b: str
    choice: str

    def __post_init__(self):
        if self.choice not in CHOICES:
            raise ValueError(f"vote choice must be one of {CHOICES}, got {self.choice!r}")
        if self.a == self.b:
            raise ValueError(f"a vote compares two different methods, got {self.a!r} twice")


@dataclass
class MethodRank:
    """One row of a :class:`Ranking` (intervals are ``(low, high)``)."""

    method: str
    rank: int
    comparisons: int
    wins: int
    ties: int
    losses: int
    win_rate: float  # (wins + ties / 2) / comparisons
    win_rate_ci: tuple[float, float]
    strength: float  # Bradley–Terry log-strength, mean 0 over the methods
    strength_ci: tuple[float, float]
    score: float  # the 1–5 scale
    score_ci: tuple[float, float]


@dataclass
class Ranking:
    """Methods ordered best first, with the number of votes and the interval level used."""

    rows: list[MethodRank]
    votes: int
    level: float = 0.95
    bootstrap: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "votes": self.votes,
            "level": self.level,
            "bootstrap": self.bootstrap,
            "notes": list(self.notes),
            "rows": [asdict(r) for r in self.rows],
        }


def tally(votes: Sequence[Vote], methods: Sequence[str]) -> np.ndarray:
    """``W[i, j]``: wins of ``methods[i]`` over ``methods[j]`` (a tie adds 0.5 to both)."""
    index = {m: i for i, m in enumerate(methods)}
    w = np.zeros((len(methods), len(methods)))
    for v in votes:
        i, j = index[v.a], index[v.b]
        if v.choice == "A":
            w[i, j] += 1
        elif v.choice == "B":
            w[j, i] += 1
        else:
            w[i, j] += 0.5
            w[j, i] += 0.5
    return w


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def bradley_terry(wins: np.ndarray, prior: float = PRIOR, iters: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Maximum a posteriori Bradley–Terry log-strengths from a win matrix (see :func:`tally`).

    Newton's method on ``sum W_ij log sigmoid(s_i - s_j) - prior/2 |s|^2``; the result has mean 0.
    """
    k = wins.shape[0]
    if prior <= 0:
        raise ValueError("prior must be positive (it keeps undefeated methods finite)")
    n = wins + wins.T
    s = np.zeros(k)
    for _ in range(iters):
        p = _sigmoid(s[:, None] - s[None, :])
        grad = (wins - n * p).sum(axis=1) - prior * s
        c = n * p * (1 - p)
        hess = c - np.diag(c.sum(axis=1)) - prior * np.eye(k)
        step = np.linalg.solve(hess, grad)
        s = s - step
        if np.max(np.abs(step)) < tol:
            break
    return s - s.mean()


def scores(strengths: np.ndarray) -> np.ndarray:
    """The 1–5 scale: ``1 + 4 *`` the mean win probability of each method against each other one."""
    k = len(strengths)
    if k < 2:
        return np.full(k, 3.0)
    p = _sigmoid(strengths[:, None] - strengths[None, :])
    np.fill_diagonal(p, 0.0)
    return 1.0 + 4.0 * p.sum(axis=1) / (k - 1)


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(0, 1)`` when ``n`` is 0)."""
    if n == 0:
        return 0.0, 1.0
    z = _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _z(level: float) -> float:
    """Two-sided normal quantile for ``level`` (bisection on erf; no scipy)."""
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid / math.sqrt(2)) < level else (lo, mid)
    return (lo + hi) / 2


def rank_votes(
    votes: Sequence[Vote], bootstrap: int = 1000, level: float = 0.95, seed: int = 0, prior: float = PRIOR
) -> Ranking:
    """Rank the methods that appear in ``votes``, best first (see the module docstring).

    ``bootstrap`` resamples of the votes give the strength and score intervals (0: no intervals,
    the point estimate is repeated).
    """
    votes = list(votes)
    methods = sorted({m for v in votes for m in (v.a, v.b)})
    if not methods:
        return Ranking([], 0, level, bootstrap, ["no votes yet"])
    w = tally(votes, methods)
    s = bradley_terry(w, prior)
    sc = scores(s)
    s_lo, s_hi, c_lo, c_hi = s.copy(), s.copy(), sc.copy(), sc.copy()
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        pairs = np.array([[methods.index(v.a), methods.index(v.b)] for v in votes])
        outcome = np.array([{"A": 1.0, "B": 0.0, "same": 0.5}[v.choice] for v in votes])
        boot_s = np.empty((bootstrap, len(methods)))
        for b in range(bootstrap):
            idx = rng.integers(0, len(votes), len(votes))
            wb = np.zeros_like(w)
            np.add.at(wb, (pairs[idx, 0], pairs[idx, 1]), outcome[idx])
            np.add.at(wb, (pairs[idx, 1], pairs[idx, 0]), 1.0 - outcome[idx])
            boot_s[b] = bradley_terry(wb, prior)
        boot_sc = np.stack([scores(x) for x in boot_s])
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        s_lo, s_hi = np.percentile(boot_s, q, axis=0)
        c_lo, c_hi = np.percentile(boot_sc, q, axis=0)
    n = w + w.T
    rows = []
    for i, m in enumerate(methods):
        comparisons = int(round(n[i].sum()))
        ties = sum(1 for v in votes if v.choice == "same" and m in (v.a, v.b))
        wins = sum(1 for v in votes if (v.choice == "A" and v.a == m) or (v.choice == "B" and v.b == m))
        rate = float(w[i].sum() / comparisons) if comparisons else 0.0
        rows.append(
            MethodRank(
                m,
                0,
                comparisons,
                wins,
                ties,
                comparisons - wins - ties,
                rate,
                wilson(w[i].sum(), comparisons, level),
                float(s[i]),
                (float(s_lo[i]), float(s_hi[i])),
                float(sc[i]),
                (float(c_lo[i]), float(c_hi[i])),
            )
        )
    rows.sort(key=lambda r: -r.strength)
    for r, row in enumerate(rows, 1):
        row.rank = r
    notes = []
    if len(votes) < 30:
        notes.append(f"only {len(votes)} votes: the intervals are wide, collect more before drawing conclusions")
    return Ranking(rows, len(votes), level, bootstrap, notes)


def ranking_markdown(ranking: Ranking, quality: dict[str, dict] | None = None) -> str:
    """A markdown table of ``ranking``; ``quality`` (``{method: {'psnr', 'ssim'}}``, e.g. the
    ``overall`` block of an eval ``report.json``) adds PSNR and SSIM columns."""
    pct = f"{ranking.level * 100:g}%"
    head = [
        "#",
        "method",
        f"score 1–5 [{pct} CI]",
        f"Bradley–Terry [{pct} CI]",
        f"win rate [{pct} CI]",
        "votes (W/T/L)",
    ]
    if quality:
        head += ["PSNR (dB)", "SSIM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for r in ranking.rows:
        cells = [
            str(r.rank),
            r.method,
            f"{r.score:.2f} [{r.score_ci[0]:.2f}, {r.score_ci[1]:.2f}]",
            f"{r.strength:+.2f} [{r.strength_ci[0]:+.2f}, {r.strength_ci[1]:+.2f}]",
            f"{r.win_rate:.0%} [{r.win_rate_ci[0]:.0%}, {r.win_rate_ci[1]:.0%}]",
            f"{r.comparisons} ({r.wins}/{r.ties}/{r.losses})",
        ]
        if quality:
            q = quality.get(r.method, {})
            cells += [f"{q['psnr']:.2f}" if "psnr" in q else "–", f"{q['ssim']:.4f}" if "ssim" in q else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    foot = [f"{ranking.votes} votes; intervals: {ranking.bootstrap} bootstrap resamples (win rate: Wilson)."]
    return "\n".join(lines + [""] + foot + [f"Note: {n}." for n in ranking.notes]) + "\n"


__all__ = [
    "Vote",
    "MethodRank",
    "Ranking",
    "tally",
    "bradley_terry",
    "scores",
    "wilson",
    "rank_votes",
    "ranking_markdown",
    "PRIOR",
]
