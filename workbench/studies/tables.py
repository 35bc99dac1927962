"""Tables every study shares: mean ± std over seeds, and whether one arm beats another beyond the seed spread."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def summarise(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of `by`: `<metric>_mean`, `<metric>_std` (ddof 1; 0 for a single seed) and `seeds` (rows)."""
    grouped = rows.groupby(list(by), dropna=False, sort=False)[list(metrics)]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    out = mean.add_suffix("_mean").join(std.add_suffix("_std"))
    out["seeds"] = grouped.size()
    return out.reset_index()


def mean_std_text(
    rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], scale: float = 1.0, digits: int = 3
) -> pd.DataFrame:
    """A readable table: `mean ± std` per metric (`mean (one run)` for a single seed) and the number of seeds."""
    summary = summarise(rows, by, metrics).set_index(list(by))
    out = pd.DataFrame(index=summary.index)
    for m in metrics:
        mean, std = summary[f"{m}_mean"] * scale, summary[f"{m}_std"] * scale
        out[m] = [
            f"{a:.{digits}f} ± {b:.{digits}f}" if n > 1 else f"{a:.{digits}f} (one run)"
            for a, b, n in zip(mean, std, summary["seeds"])
        ]
    out["seeds"] = summary["seeds"]
    return out


def beyond_spread(effect: float, spread: float) -> str:
    """'better' / 'worse' when |effect| exceeds the seed spread, else 'within spread'."""
    if np.isnan(effect) or np.isnan(spread):
        return "n/a"
    return "better" if effect > spread else "worse" if effect < -spread else "within spread"


def compare_arms(
    rows: pd.DataFrame,
    arm: str,
    a: object,
    b: object,
    metric: str,
    by: Sequence[str] = (),
    scale: float = 100.0,
) -> pd.DataFrame:
    """Arm `a` against arm `b` (values of column `arm`) per group of `by`: both means, the effect a − b, the seed
    spread (the two seed stds added) in units of `metric` × `scale`, the paired per-seed gains where both arms ran
    the same seeds, and a verdict (`beyond_spread`)."""
    by = list(by)
    summary = summarise(rows[rows[arm].isin([a, b])], by + [arm], [metric])
    out = []
    groups = summary.groupby(by, dropna=False, sort=False) if by else [((), summary)]
    for key, group in groups:
        side = group.set_index(arm)
        if a not in side.index or b not in side.index:
            continue
        mean_a, mean_b = side.loc[a, f"{metric}_mean"] * scale, side.loc[b, f"{metric}_mean"] * scale
        spread = (side.loc[a, f"{metric}_std"] + side.loc[b, f"{metric}_std"]) * scale
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update({f"{a}": mean_a, f"{b}": mean_b, "effect": mean_a - mean_b, "spread": spread})
        if "seed" in rows:
            mask = np.ones(len(rows), bool)
            for column, value in zip(by, key if isinstance(key, tuple) else (key,)):
                mask &= (rows[column] == value).to_numpy()
            per_seed = rows[mask].pivot_table(index="seed", columns=arm, values=metric, aggfunc="mean")
            if a in per_seed and b in per_seed:
                gains = ((per_seed[a] - per_seed[b]) * scale).dropna()
                row["paired_gains"] = ", ".join(f"{g:+.2f}" for g in gains)
        one_seed = min(side.loc[a, "seeds"], side.loc[b, "seeds"]) < 2  # no spread to judge against
        row["verdict"] = "one seed: no verdict" if one_seed else beyond_spread(row["effect"], spread)
        out.append(row)
    return pd.DataFrame(out)
