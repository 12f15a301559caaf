"""Every Prometheus metric of the agents, declared once; other modules use them by name.

Jobs run in child processes, so prometheus-client runs in multiprocess mode: the entry command
(`services/entrypoint.sh`) exports PROMETHEUS_MULTIPROC_DIR before Python starts, and the worker's
`/metrics` endpoint merges every process's files. Labels are bounded: `agent` (the service name) and
small fixed sets below - never room names, identities or text.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "voice_agent"

# Interruption kinds: cut_in = the agent cut the user off; barge_in = the user interrupted the
# agent's audible reply; preempted = a reply the agent had started was dropped because the user
# went on talking (before its audio, or replaced by a cut-in); suppressed = the user spoke during
# protected speech; false = a barge-in turned out to be noise and the agent resumed.
# barge_in + preempted are the replies the user talked over.
INTERRUPTION_KINDS = ("cut_in", "barge_in", "preempted", "suppressed", "false")
SESSION_OUTCOMES = ("completed", "failed")
PROVIDER_COMPONENTS = ("stt", "llm", "tts")

# Voice latencies live between tens of milliseconds and a few seconds; 10 s is already a failure.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)

INTERRUPTIONS = Counter(
    "voice_agent_interruptions",
    "Interruptions by kind (cut_in, barge_in, preempted, suppressed, false).",
    ["agent", "kind"],
)
RESPONSE_LATENCY = Histogram(
    "voice_agent_response_latency_seconds",
    "From the end of the user's speech to the start of the agent's audio.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
CUT_IN_LATENCY = Histogram(
    "voice_agent_cut_in_latency_seconds",
    "From the moment a turn limit was reached to the start of the agent's cut-in audio.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
END_OF_UTTERANCE_DELAY = Histogram(
    "voice_agent_end_of_utterance_delay_seconds",
    "From the end of the user's speech to the end-of-turn decision.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
STT_DELAY = Histogram(
    "voice_agent_stt_delay_seconds",
    "From the end of the user's speech to the final transcript.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
LLM_TTFT = Histogram(
    "voice_agent_llm_ttft_seconds",
    "LLM time to first token.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
TTS_TTFB = Histogram(
    "voice_agent_tts_ttfb_seconds",
    "TTS time to first audio byte.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
SESSIONS_ACTIVE = Gauge(
    "voice_agent_sessions_active",
    "Sessions currently running.",
    ["agent"],
    multiprocess_mode="livesum",  # summed over live job processes only
)
SESSIONS = Counter(
    "voice_agent_sessions",
    "Sessions ended, by outcome (completed, failed).",
    ["agent", "outcome"],
)
PROVIDER_ERRORS = Counter(
    "voice_agent_provider_errors",
    "Provider errors by component (stt, llm, tts), recoverable or not.",
    ["agent", "component"],
)


def init_labels(agent: str) -> None:
    """Create every bounded series at zero, so dashboards and rate() see them from the start."""
    for kind in INTERRUPTION_KINDS:
        INTERRUPTIONS.labels(agent=agent, kind=kind)
    for outcome in SESSION_OUTCOMES:
        SESSIONS.labels(agent=agent, outcome=outcome)
    for component in PROVIDER_COMPONENTS:
        PROVIDER_ERRORS.labels(agent=agent, component=component)
    for hist in (RESPONSE_LATENCY, CUT_IN_LATENCY, END_OF_UTTERANCE_DELAY, STT_DELAY, LLM_TTFT,
                 TTS_TTFB):
        hist.labels(agent=agent)
    SESSIONS_ACTIVE.labels(agent=agent)
