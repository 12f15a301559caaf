"""Fitting received 10 ms levels to known sentences' envelopes (used by recogniser.py).

The path to the STT may apply gain control (WebRTC does): levels come out raised, compressed,
boosted after a pause. So a fit is affine (gain and slope) over the windows voiced in both,
plus a penalty for voicing that disagrees. The receiver's jitter buffer also stretches and
squeezes time (WebRTC's NetEQ drops or repeats pitch periods when its delay drifts): 30 ms
less over a 0.4 s word was measured in e2e, so received audio is also tried rescaled in time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .vocabulary import FLOOR_DB, WINDOW_S, Entry, View

# received time / sentence time: how much the jitter buffer may have squeezed or stretched it
SCALES = (1.0, 0.93, 1.07)
VOICING_MARGIN_DB = 6.0


def rescale(recv: np.ndarray, scale: float) -> np.ndarray:
    """Received levels mapped back to the sentence's time base (`scale` received per sent)."""
    if scale == 1.0:
        return recv
    n = max(2, round(len(recv) / scale))
    return np.interp(np.arange(n) * scale, np.arange(len(recv)), recv)


def candidates(
    entries: list[Entry], recv: np.ndarray, skip: int, thr: float
) -> list[tuple[float, Entry, View, int]]:
    """Best (score, entry, view, offset of the search start) per entry; `recv` begins
    `skip` windows after the search start."""
    out = []
    for e in entries:
        best: tuple[float, Entry, View, int] | None = None
        for scale in SCALES:
            r = rescale(recv, scale)
            m = len(r)
            for v in e.views:
                env = v.env
                padded = np.concatenate([env, np.full(m, FLOOR_DB)])
                rows = np.lib.stride_tricks.sliding_window_view(padded, m)[: len(env)]
                dist, _ = fit(rows, r, thr)
                k = int(np.argmin(dist))
                if best is None or dist[k] < best[0]:
                    best = (float(dist[k]), e, v, k - round(skip / scale))
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
    # voicing disagrees only where one side is clearly voiced: a level near the threshold
    # lands on either side of it after gain control
    loud_w, loud_r = windows > thr + VOICING_MARGIN_DB, recv > thr + VOICING_MARGIN_DB
    disagree = (loud_w & ~vr[None, :]) | (loud_r[None, :] & ~vw)
    score = resid + 10.0 * disagree.mean(axis=1)
    score[both.sum(axis=1) < 10] = np.inf
    return score, slope


def score_at(env: np.ndarray, offset: int, recv: np.ndarray) -> float:
    return min(_score_at(env, offset, rescale(recv, s)) for s in SCALES)


def _score_at(env: np.ndarray, offset: int, recv: np.ndarray) -> float:
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
