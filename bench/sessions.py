"""Benchmarks on in-process sessions (testkit/inproc.py): a real AgentSession with the real
Silero VAD and the real deepgram/openai plugins on local fakes, espeak speech played in real time.

* cut-in: our interrupter (word limit N, sentences off) against the framework's own
  `turn_handling["user_turn_limit"] = {"max_words": N}` with the default
  `Agent.on_user_turn_exceeded`, on the same monologue. "Limit reached" is when the N-th word
  ended in the audio; overshoot counts the words whose spoken end lies between that moment and
  the first agent audio; latency is limit reached -> first agent audio.
* overhead: user stopped -> agent audio over short turns, our wiring (session metrics, policy,
  InterrupterAgent) against a bare AgentSession with the same options and a plain Agent.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from livekit.agents import Agent, vad
from livekit.plugins import silero

from services.common.session_metrics import SessionMetrics
from services.common.settings import CommonSettings
from services.interrupter.agent import InterrupterAgent
from testkit.audio import Segment, merge_turns
from testkit.inproc import Harness, SessionFactory
from testkit.scenarios import WEEKEND
from testkit.speech import synthesize
from testkit.utterance import Utterance

from .baseline import framework_session, plain_agent, same_options
from .common import Row, fmt, spread

MONOLOGUE = list(WEEKEND[:4])
# The fake Deepgram sends a final every 7 words (or at a pause), so the framework's finals-only
# limit overshoots by however far N falls before the next final. Word limits 8..14 cover one
# whole final period: the median is not flattered (or hurt) by one lucky choice of N.
FULL_WORD_LIMITS = (8, 9, 10, 11, 12, 13, 14)
QUICK_WORD_LIMITS = (10,)
SHORT_TURNS = [
    ["Hello there."],
    ["Can you help me plan a trip?"],
    ["What is the weather like today?"],
    ["Tell me something interesting."],
]
TURN_GAP_S = 0.6  # agent audio segments closer than this are one spoken turn (preface + reply)


# --- sessions -------------------------------------------------------------------------------


def _ours(settings: CommonSettings, session_metrics: SessionMetrics | None) -> Agent:
    return InterrupterAgent(settings, session_metrics)


def _turns(segments: list[Segment], after: float) -> list[tuple[float, float | None]]:
    """Agent audio segments starting after `after`, merged across short gaps: spoken turns."""
    return [(t.start, t.end) for t in merge_turns(segments, TURN_GAP_S, after)]


# --- cut-in ---------------------------------------------------------------------------------


async def _cut_in_rep(
    vad_model: vad.VAD, utt: Utterance, system: str, limit: int, quick: bool
) -> dict[str, Any]:
    async with SessionFactory(vad_model) as start:
        if system == "ours":
            h: Harness = await start("interrupter", _ours, script=[utt],
                                     INTERRUPT_MAX_SENTENCES="0", INTERRUPT_MAX_WORDS=str(limit))
        else:
            factory = functools.partial(framework_session, user_turn_limit={"max_words": limit})
            h = await start("interrupter", plain_agent, script=[utt], session_factory=factory)
        await asyncio.sleep(0.5)  # the VAD and STT stream settle on silence first
        speaking = asyncio.ensure_future(h.speak(utt))
        await h.wait_for(lambda: bool(h.mic.speech_started_at), timeout=5)
        t0 = h.mic.speech_started_at[-1]
        spoken_end = t0 + utt.sentences[-1].end
        limit_at = t0 + utt.words[limit - 1].end
        if quick:  # the first agent audio is all a smoke run needs
            deadline = time.monotonic() + utt.duration + 5.0
            while not h.speaker.segments and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        else:  # the whole monologue, then long enough for a second (duplicate) reply
            await speaking
            await asyncio.sleep(4.0)
        turns = _turns(h.speaker.segments, t0)
        chat_requests = len(h.oai.chat_requests)
        speaking.cancel()
    first = turns[0][0] if turns else None
    words_after = [w for w in utt.words if t0 + w.end > limit_at]
    overshoot = sum(1 for w in words_after if first is None or t0 + w.end <= first)
    return {
        "system": system,
        "max_words": limit,
        "limit_reached_s": round(limit_at - t0, 3),
        "first_agent_audio_s": None if first is None else round(first - t0, 3),
        "latency_s": None if first is None else round(first - limit_at, 3),
        "overshoot_words": overshoot,
        "cut_ins_during_monologue": sum(1 for a, _ in turns if a < spoken_end),
        "replies_after_user_stopped": sum(1 for a, _ in turns if a >= spoken_end),
        "llm_requests": chat_requests,
        "monologue_s": round(utt.sentences[-1].end, 2),
    }


async def cut_in(vad_model: vad.VAD, quick: bool) -> dict[str, Any]:
    utt = synthesize(MONOLOGUE)
    limits = QUICK_WORD_LIMITS if quick else FULL_WORD_LIMITS
    reps: list[dict[str, Any]] = []
    for i, limit in enumerate(limits):
        # alternate who goes first, so a load spike does not always land on the same system
        order = ("ours", "framework") if i % 2 == 0 else ("framework", "ours")
        for system in order:
            reps.append(await _cut_in_rep(vad_model, utt, system, limit, quick))
    out: dict[str, Any] = {"word_limits": list(limits), "words_spoken": len(utt.words),
                           "full_monologue": not quick, "reps": reps}
    for system in ("ours", "framework"):
        mine = [r for r in reps if r["system"] == system]
        lat = [r["latency_s"] for r in mine if r["latency_s"] is not None]
        out[system] = {
            "overshoot_words": spread([r["overshoot_words"] for r in mine], 1),
            "latency_s": spread(lat),
            "no_cut_in": sum(1 for r in mine if r["latency_s"] is None),
            "cut_ins_per_monologue": spread([r["cut_ins_during_monologue"] for r in mine], 1),
            "replies_after_user_stopped": spread(
                [r["replies_after_user_stopped"] for r in mine], 1),
        }
    return out


def cut_in_rows(res: dict[str, Any]) -> list[Row]:
    ours, fw = res["ours"], res["framework"]
    n = ours["overshoot_words"]["n"]
    label = "framework user_turn_limit"
    extra = ""
    if res["full_monologue"]:  # quick runs stop at the first agent audio
        extra = (f"; cut-ins per {res['words_spoken']}-word monologue: ours "
                 f"{ours['cut_ins_per_monologue']['median']:g}, framework "
                 f"{fw['cut_ins_per_monologue']['median']:g}; replies after the user stopped: "
                 f"ours {ours['replies_after_user_stopped']['median']:g}, framework "
                 f"{fw['replies_after_user_stopped']['median']:g}")
    o_med, f_med = ours["overshoot_words"]["median"], fw["overshoot_words"]["median"]
    overshoot = Row(
        "overshoot", "words", o_med, f_med, label, "≤ 1 word",
        met=o_med is not None and o_med <= 1,
        note=(f"median of {n} reps, N = {'/'.join(map(str, res['word_limits']))}; ours range "
              f"{ours['overshoot_words']['min']:g}-{ours['overshoot_words']['max']:g}, framework "
              f"{fw['overshoot_words']['min']:g}-{fw['overshoot_words']['max']:g}{extra}"),
    )
    lo, lf = ours["latency_s"]["median"], fw["latency_s"]["median"]
    misses = f"; no cut-in: ours {ours['no_cut_in']}, framework {fw['no_cut_in']}" if (
        ours["no_cut_in"] or fw["no_cut_in"]) else ""
    latency = Row(
        "cut-in latency", "s", lo, lf, label, "",
        note=(f"limit reached (N-th word's spoken end) -> first agent audio; ours range "
              f"{ours['latency_s']['min']}-{ours['latency_s']['max']} s, framework "
              f"{fw['latency_s']['min']}-{fw['latency_s']['max']} s{misses}"),
    )
    return [overshoot, latency]


# --- response-latency overhead --------------------------------------------------------------


async def _turn_latency(h: Harness, utt: Utterance) -> float | None:
    start, _ = await h.speak(utt)
    stopped = start + utt.sentences[-1].end
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        after = [s for s in h.speaker.segments if s.start >= stopped]
        if after:
            await h.wait_quiet(0.5)
            return after[0].start - stopped
        await asyncio.sleep(0.01)
    return None


async def overhead(vad_model: vad.VAD, quick: bool) -> dict[str, Any]:
    utts = [synthesize(s) for s in SHORT_TURNS]
    turns = 2 if quick else 16
    replies = ["Sure thing."] * (turns + 2)  # short replies: the turn is over sooner
    async with SessionFactory(vad_model) as start_ours, \
            SessionFactory(vad_model, metrics=False) as start_bare:
        ours = await start_ours("interrupter", _ours, script=utts, replies=replies)
        bare = await start_bare("interrupter", plain_agent, script=utts, replies=replies,
                                session_factory=framework_session)
        if not same_options(ours.session, bare.session):
            raise RuntimeError("the bare session's options differ from build_session's")
        await asyncio.sleep(0.5)
        if not quick:  # one unmeasured turn each: the first request opens the connections
            for h in (ours, bare):
                await _turn_latency(h, utts[0])
        lat: dict[str, list[float]] = {"ours": [], "bare": []}
        lost = {"ours": 0, "bare": 0}
        for i in range(turns):
            utt = utts[(i + 1) % len(utts)]
            # ABBA order: drift in the machine's load falls on both equally
            order = ("ours", "bare") if i % 2 == 0 else ("bare", "ours")
            for name in order:
                value = await _turn_latency(ours if name == "ours" else bare, utt)
                if value is None:
                    lost[name] += 1
                else:
                    lat[name].append(value)
    return {
        "turns_each": turns,
        "paired_difference_ms": spread(
            [(a - b) * 1000 for a, b in zip(lat["ours"], lat["bare"], strict=False)], 1),
        "ours_s": spread(lat["ours"]),
        "bare_s": spread(lat["bare"]),
        "unanswered": lost,
        "same_session_options": True,
    }


def overhead_row(res: dict[str, Any]) -> Row:
    o, b = res["ours_s"]["median"], res["bare_s"]["median"]
    ratio = o / b if o is not None and b else None
    diff_ms = (o - b) * 1000 if o is not None and b is not None else None
    return Row(
        "overhead", "s", o, b, "bare AgentSession + plain Agent", "ratio ≤ 1.02",
        met=ratio is not None and ratio <= 1.02,
        note=(f"user stopped -> agent audio, median of {res['ours_s']['n']} vs "
              f"{res['bare_s']['n']} short turns (ABBA); difference of medians "
              f"{fmt(diff_ms, 'ms')}, median paired difference "
              f"{fmt(res['paired_difference_ms']['median'], 'ms')}; ranges ours "
              f"{res['ours_s']['min']}-{res['ours_s']['max']} s, bare "
              f"{res['bare_s']['min']}-{res['bare_s']['max']} s; unanswered {res['unanswered']}"),
    )


# --- entry ----------------------------------------------------------------------------------


def run(quick: bool, parts: Callable[[str], bool]) -> dict[str, Any]:
    """The in-process parts selected by `parts(name)`, in one event loop with one VAD model."""

    async def main() -> dict[str, Any]:
        vad_model = silero.VAD.load()
        out: dict[str, Any] = {}
        for name, fn in (("cut_in", cut_in), ("overhead", overhead)):
            if not parts(name):
                continue
            started = time.time()
            try:
                out[name] = await fn(vad_model, quick)
            except Exception as e:  # noqa: BLE001 - one failed part must not lose the others
                out[name] = {"error": f"{type(e).__name__}: {e}"}
            out[name]["window"] = (started, time.time())
        return out

    return asyncio.run(main())


def rows(res: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for name, builder in (("cut_in", cut_in_rows), ("overhead", lambda r: [overhead_row(r)])):
        if name in res and "error" not in res[name]:
            out.extend(builder(res[name]))
    return out
