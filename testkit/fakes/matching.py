"""Fitting received 10 ms levels to known sentences' envelopes (used by recogniser.py).

The path to the STT may apply gain control (WebRTC does): levels come out raised, compressed,
boosted after a pause. So a fit is affine (gain and slope) over the windows voiced in both,
plus a penalty for voicing that disagrees. The receiver's jitter buffer also stretches and
squeezes time (WebRTC's NetEQ drops or repeats pitch periods when its delay drifts): 30 ms
less over a 0.4 s word was measured in e2e, so received audio is also tried rescaled in time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .vocabulary import FLOOR_DB, WINDOW_S, Entry, View

# received time / sentence time: how much the jitter buffer may have squeezed or stretched it
SCALES = (1.0, 0.93, 1.07)
VOICING_MARGIN_DB = 3.0
GOOD_FIT_DB = 1.0  # a fit this close needs no rescaled try
REFINE_WITHIN_DB = 1.5  # sentences this close to the best coarse fit are fitted finely ...
REFINE_AT_MOST = 3  # ... a few of them ...
REFINE_BELOW_DB = 4.0  # ... when the best is this close (the right one: up to 2.2 coarse)


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
    `skip` windows after the search start.

    A coarse pass (every other window of one phase, no rescaling) ranks the sentences; only
    those close to the best are fitted at every phase and scale. Identification runs at every
    onset and again every 0.1 s while nothing fits, on every connection: it is most of the
    fake's CPU."""
    coarse = [_fit_view(e, e.views[0], 1.0, recv, skip, thr, step=2) for e in entries]
    if not coarse:
        return []
    ranked = sorted(range(len(entries)), key=lambda k: coarse[k][0])
    top = coarse[ranked[0]][0]
    out = list(coarse)
    if top <= REFINE_BELOW_DB:  # else nothing known is being said: no fit can come near
        for k in ranked[:REFINE_AT_MOST]:
            if coarse[k][0] <= top + REFINE_WITHIN_DB:
                out[k] = _best(entries[k], entries[k].views, SCALES, recv, skip, thr)
    out.sort(key=lambda c: c[0])
    return out


def _best(
    e: Entry, views: list[View], scales: tuple[float, ...], recv: np.ndarray, skip: int, thr: float
) -> tuple[float, Entry, View, int]:
    best = min((_fit_view(e, v, 1.0, recv, skip, thr) for v in views), key=lambda c: c[0])
    if best[0] > GOOD_FIT_DB:  # maybe time-warped: rescaled, on the best phase only
        for scale in scales[1:]:
            best = min(best, _fit_view(e, best[2], scale, recv, skip, thr), key=lambda c: c[0])
    return best


def _fit_view(
    e: Entry, v: View, scale: float, recv: np.ndarray, skip: int, thr: float, step: int = 1
) -> tuple[float, Entry, View, int]:
    """The best offset of `recv` in one view, on every `step`-th window (coarse: to step)."""
    r = rescale(recv, scale)[::step]
    env = v.env[::step]
    m = len(r)
    padded = np.concatenate([env, np.full(m, FLOOR_DB)])
    rows = np.lib.stride_tricks.sliding_window_view(padded, m)[: len(env)]
    dist, _ = fit(rows, r, thr)
    k = int(np.argmin(dist))
    return (float(dist[k]), e, v, k * step - round(skip / scale))


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
    best = _score_at(env, offset, recv)
    if best <= GOOD_FIT_DB:
        return best
    return min(best, *(_score_at(env, offset, rescale(recv, s)) for s in SCALES[1:]))


def _score_at(env: np.ndarray, offset: int, recv: np.ndarray) -> float:
    seg = env[max(0, offset) : offset + len(recv)]
    seg = np.concatenate([np.full(max(0, -offset), FLOOR_DB), seg])
    if len(seg) < len(recv):
        seg = np.concatenate([seg, np.full(len(recv) - len(seg), FLOOR_DB)])
    return float(fit(seg[None, :], recv, -40.0)[0][0])


def windows(seconds: float) -> int:
    return max(1, round(seconds / WINDOW_S))


def median(d: Iterable[float]) -> float:
    # on the 30 values a track keeps, sorting in Python is ~10x cheaper than numpy's median
    a = sorted(d)
    n = len(a)
    return a[n // 2] if n % 2 else (a[n // 2 - 1] + a[n // 2]) / 2


def spread(d: Iterable[float]) -> float:
    """Median absolute deviation: how much the level differences vary around their gain."""
    a = list(d)
    m = median(a)
    return median(abs(x - m) for x in a)
