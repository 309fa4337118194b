"""The soak's samples and its verdict (tools/soak.py): pure functions of the samples, so the tests can feed
synthetic runs and see every tolerance fail when its quantity grows. The tolerances are stated in soak.py's
docstring (its --help)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

HOP_S = 0.5  # qamoe-live's default --hop: one sentiment message per hop


@dataclass(frozen=True)
class Tolerances:
    rss_mb_per_min: float = 2.0
    rss_floor_mb: float = 10.0
    rss_min_minutes: float = 10.0  # shorter runs mostly measure warm-up: only a gross leak and the ceiling fail
    rss_gross_mb_per_min: float = 50.0
    rss_ceiling_mb: float = 1200.0  # the peak-RSS target of docs/BENCHMARKS.md
    thread_slack: int = 2
    fd_slack: int = 4
    lag_floor_s: float = 5.0
    lag_factor: float = 2.0
    lag_s_per_min: float = 1.0
    min_rate_fraction: float = 0.9
    min_presence: float = 0.9


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the first health message
    rss_mb: float
    rss_floor_mb: float  # the least RSS seen (polled every second) since the previous sample
    threads: int
    fds: int
    queue_depth: dict[str, int]
    queue_dropped: dict[str, int]
    asr_lag_s: float | None
    asr_lag_max_s: float | None  # the largest lag reported since the previous sample
    sentiment: int  # sentiment messages received so far
    invalid: int  # of which published invalid
    present: dict[
        str, int
    ]  # of which with audio / vision present (a timeline broken by a loop pass loses them)
    rate_hz: float | None  # sentiment messages per second since the previous sample
    gaps: int  # sequence gaps seen so far, all topics
    cpu_s: float  # qamoe-live's CPU time so far (user + system)
    load_1m: float  # the machine's 1-minute load average (context: other processes can starve the ASR)


def slope_per_min(samples: list[Sample], value: str) -> float | None:
    pts = [(s.t_s / 60, getattr(s, value)) for s in samples if getattr(s, value) is not None]
    if len(pts) < 3:
        return None
    t, v = np.array(pts, dtype=float).T
    return float(np.polyfit(t, v, 1)[0])


def rss_high_water(samples: list[Sample]) -> list[Sample]:
    """The samples with `rss_floor_mb` replaced by its running maximum. A leak keeps lifting the floor to new
    highs; a dip (the allocator giving memory back, then taking it again) is not growth, but one dip at the
    start of the second half used to swing its least-squares slope by +-10 MB/min on a healthy 2-minute run."""
    out, high = [], float("-inf")
    for s in samples:
        high = max(high, s.rss_floor_mb)
        out.append(dataclasses.replace(s, rss_floor_mb=high))
    return out


def p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def halves(samples: list[Sample], minutes: float) -> tuple[list[Sample], list[Sample]]:
    mid = minutes * 60 / 2
    return [s for s in samples if s.t_s < mid], [s for s in samples if s.t_s >= mid]


def verdict(samples: list[Sample], minutes: float, tol: Tolerances = Tolerances()) -> list[str]:
    """One line per tolerance exceeded (empty: passed). Pure: the tests feed it synthetic samples."""
    if len(samples) < 4:
        return [f"samples: only {len(samples)}; need at least 4 (run longer or sample more often)"]
    first, second = halves(samples, minutes)
    fails = []
    second_min = max(1e-9, (second[-1].t_s - second[0].t_s) / 60)
    fails += rss_verdict(samples, minutes, second_min, tol)
    for name, slack in (("threads", tol.thread_slack), ("fds", tol.fd_slack)):
        a, b = max(getattr(s, name) for s in first), max(getattr(s, name) for s in second)
        if b > a + slack:
            fails.append(
                f"{name} grew from at most {a} in the first half to {b} in the second (slack {slack})"
            )
    fails += lag_verdict(samples, first, second, second_min, tol)
    want = tol.min_rate_fraction / HOP_S
    slow = [s for s in samples[2:] if s.rate_hz is not None and s.rate_hz < want]  # [1] spans the warm-up
    if slow:
        fails.append(
            f"sentiment rate fell to {min(s.rate_hz for s in slow):.2f}/s at t={slow[0].t_s:.0f} s "
            f"(limit {want:.2f}/s: 1/hop)"
        )
    for m, share in presence_shares(first[-1], second[-1]).items():
        if share < tol.min_presence:
            fails.append(
                f"{m} present in {share:.0%} of the second half's windows (limit {tol.min_presence:.0%}): "
                "its capture timeline broke (a loop pass?)"
            )
    if samples[-1].gaps:
        fails.append(f"gaps: {samples[-1].gaps} sequence gap(s) at the subscriber")
    return fails


def rss_verdict(samples: list[Sample], minutes: float, second_min: float, tol: Tolerances) -> list[str]:
    """RSS growth: the slope of the floor's high-water mark over the second half. A run shorter than
    rss_min_minutes mostly measures warm-up (allocator pools, ONNX Runtime arenas, the ASR's first decodes: a
    healthy 2-minute run once read 10.05 MB/min), so there only a gross leak fails; every run fails above the
    RSS ceiling."""
    fails = []
    short = minutes < tol.rss_min_minutes
    rss_limit = tol.rss_gross_mb_per_min if short else max(tol.rss_mb_per_min, tol.rss_floor_mb / second_min)
    _, high = halves(rss_high_water(samples), minutes)
    rss_slope = slope_per_min(high, "rss_floor_mb")
    if rss_slope is not None and rss_slope > rss_limit:
        fails.append(
            f"rss grew {rss_slope:.2f} MB/min over the second half (limit {rss_limit:.2f} MB/min"
            f"{f' for a run under {tol.rss_min_minutes:g} min' if short else ''}): "
            f"floor high-water mark {high[0].rss_floor_mb:.1f} -> {high[-1].rss_floor_mb:.1f} MB"
        )
    peak = max(s.rss_mb for s in samples)
    if peak > tol.rss_ceiling_mb:
        fails.append(f"rss reached {peak:.0f} MB (ceiling {tol.rss_ceiling_mb:g} MB)")
    return fails


def lag_verdict(
    samples: list[Sample], first: list[Sample], second: list[Sample], second_min: float, tol: Tolerances
) -> list[str]:
    """ASR lag "growing without bound": it ends high (a transient spike that recovers is load, not growth)
    or keeps rising through the second half."""
    fails = []
    lag_a = p95([s.asr_lag_max_s for s in first if s.asr_lag_max_s is not None]) or 0.0
    last = [
        s.asr_lag_max_s for s in samples if s.t_s >= 0.75 * samples[-1].t_s and s.asr_lag_max_s is not None
    ]
    end_limit = max(tol.lag_floor_s, tol.lag_factor * lag_a)
    if last and max(last) > end_limit:
        fails.append(
            f"asr lag {max(last):.2f} s in the last quarter (limit {end_limit:.2f} s: max of "
            f"{tol.lag_floor_s:g} s and {tol.lag_factor:g} x the first half's p95 {lag_a:.2f} s)"
        )
    slope_limit = max(tol.lag_s_per_min, tol.lag_floor_s / second_min)
    slope = slope_per_min(second, "asr_lag_max_s")
    if slope is not None and slope > slope_limit:
        fails.append(f"asr lag grew {slope:.2f} s/min over the second half (limit {slope_limit:.2f} s/min)")
    return fails


def presence_shares(mid: Sample, end: Sample) -> dict[str, float]:
    """Per modality, the share of the second half's windows that had it."""
    n = end.sentiment - mid.sentiment
    return {m: (end.present[m] - mid.present.get(m, 0)) / n for m in end.present} if n > 0 else {}


def summarize(samples: list[Sample], minutes: float) -> dict[str, Any]:
    _, high = halves(rss_high_water(samples), minutes)
    rates = [s.rate_hz for s in samples[1:] if s.rate_hz is not None]
    lags = [s.asr_lag_max_s for s in samples if s.asr_lag_max_s is not None]
    drops = {k: v for k, v in samples[-1].queue_dropped.items() if v}
    return {
        "samples": len(samples),
        "rss_mb": {"start": samples[0].rss_mb, "end": samples[-1].rss_mb,
                   "max": max(s.rss_mb for s in samples),
                   "slope_second_half_mb_per_min": slope_per_min(high, "rss_floor_mb")},
        "threads": {"min": min(s.threads for s in samples), "max": max(s.threads for s in samples)},
        "fds": {"min": min(s.fds for s in samples), "max": max(s.fds for s in samples)},
        "asr_lag_s": {"p95": p95(lags), "max": max(lags) if lags else None},
        "sentiment_rate_hz": {"mean": float(np.mean(rates)) if rates else None,
                              "min": min(rates) if rates else None},
        "sentiment_messages": samples[-1].sentiment,
        "invalid": samples[-1].invalid,
        "gaps": samples[-1].gaps,
        "queue_drops": drops,
        "queue_depth_max": {k: max(s.queue_depth.get(k, 0) for s in samples)
                            for k in samples[-1].queue_depth},
        "cpu_percent": cpu_percent(samples),
        "load_1m": {"max": max(s.load_1m for s in samples), "cores": os.cpu_count()},
    }  # fmt: skip


def cpu_percent(samples: list[Sample]) -> float | None:
    """qamoe-live's mean CPU use over the run, in % of one core."""
    span = samples[-1].t_s - samples[0].t_s
    return round(100 * (samples[-1].cpu_s - samples[0].cpu_s) / span, 1) if span > 0 else None


def table(summary: dict[str, Any]) -> str:
    def f(x: Any, spec: str = ".2f") -> str:
        return "-" if x is None else format(x, spec)

    r, lag, rate = summary["rss_mb"], summary["asr_lag_s"], summary["sentiment_rate_hz"]
    rows = [
        ("samples", str(summary["samples"])),
        (
            "RSS start / end / max (MB)",
            f"{f(r['start'], '.1f')} / {f(r['end'], '.1f')} / {f(r['max'], '.1f')}",
        ),
        ("RSS floor slope, 2nd half (MB/min)", f(r["slope_second_half_mb_per_min"])),
        ("threads min / max", f"{summary['threads']['min']} / {summary['threads']['max']}"),
        ("open fds min / max", f"{summary['fds']['min']} / {summary['fds']['max']}"),
        ("ASR lag p95 / max (s)", f"{f(lag['p95'])} / {f(lag['max'])}"),
        ("sentiment rate mean / min (/s)", f"{f(rate['mean'])} / {f(rate['min'])}"),
        ("sentiment messages (invalid)", f"{summary['sentiment_messages']} ({summary['invalid']})"),
        ("sequence gaps", str(summary["gaps"])),
        ("queue drops", ", ".join(f"{k} {v}" for k, v in summary["queue_drops"].items()) or "none"),
        ("qamoe-live CPU (% of a core)", f(summary["cpu_percent"], ".0f")),
        ("machine load max (cores)", f"{summary['load_1m']['max']:.2f} ({summary['load_1m']['cores']})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
