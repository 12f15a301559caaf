"""Fitting received 10 ms levels to known sentences' envelopes (used by recogniser.py).

The path to the STT may apply gain control (WebRTC does): levels come out raised, compressed,
boosted after a pause. So a fit is affine (gain and slope) over the windows voiced in both,
plus a penalty for voicing that disagrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .vocabulary import FLOOR_DB, WINDOW_S, Entry, View


def candidates(
    entries: list[Entry], recv: np.ndarray, skip: int, thr: float
) -> list[tuple[float, Entry, View, int]]:
    """Best (score, entry, view, offset of the search start) per entry; `recv` begins
    `skip` windows after the search start."""
    out = []
    m = len(recv)
    for e in entries:
        best: tuple[float, Entry, View, int] | None = None
        for v in e.views:
            env = v.env
            padded = np.concatenate([env, np.full(m, FLOOR_DB)])
            rows = np.lib.stride_tricks.sliding_window_view(padded, m)[: len(env)]
            dist, _ = fit(rows, recv, thr)
            k = int(np.argmin(dist))
            if best is None or dist[k] < best[0]:
                best = (float(dist[k]), e, v, k - skip)
        if best is not None:
            out.append(best)
    out.sort(key=lambda c: c[0])
    return out


def fit(windows: np.ndarray, recv: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """How well `recv` fits each row of `windows`: (score in dB, slope).

    The transmission path may apply automatic gain control (WebRTC does): levels come out
    raised and compressed, more so at an onset. So the fit is affine (gain and slope) over the
    windows voiced in both, plus 10 dB per unit of voicing disagreement.
    """
    vw, vr = windows > thr, recv > thr
    both = vw & vr[None, :]
    nb = np.maximum(both.sum(axis=1), 1)
    mw = (windows * both).sum(axis=1) / nb
    mr = (recv[None, :] * both).sum(axis=1) / nb
    wc = (windows - mw[:, None]) * both
    rc = (recv[None, :] - mr[:, None]) * both
    slope = np.clip((wc * rc).sum(axis=1) / ((wc * wc).sum(axis=1) + 1e-9), 0.4, 1.5)
    resid = (np.minimum(np.abs(rc - slope[:, None] * wc), 10.0) * both).sum(axis=1) / nb
    score = resid + 10.0 * (vw != vr[None, :]).mean(axis=1)
    score[both.sum(axis=1) < 10] = np.inf
    return score, slope


def score_at(env: np.ndarray, offset: int, recv: np.ndarray) -> float:
    seg = env[max(0, offset) : offset + len(recv)]
    seg = np.concatenate([np.full(max(0, -offset), FLOOR_DB), seg])
    if len(seg) < len(recv):
        seg = np.concatenate([seg, np.full(len(recv) - len(seg), FLOOR_DB)])
    return float(fit(seg[None, :], recv, -40.0)[0][0])


def windows(seconds: float) -> int:
    return max(1, round(seconds / WINDOW_S))


def spread(d: Any) -> float:
    """Median absolute deviation: how much the level differences vary around their gain."""
    a = np.asarray(d)
    return float(np.median(np.abs(a - np.median(a))))
