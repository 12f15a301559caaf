"""The one definition of the voice agents' monitoring: metric names, thresholds, selectors and the
PromQL that the recording rules, the alerts and the dashboard panels share.

Each shared query is written once, as a function of a `Scope`: `RULES` evaluates every series
over fixed windows (the recording rules); `PANELS` narrows to the dashboard's template variables
over Grafana's windows. rules.py and dashboards.py only compose these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from livekit.agents.telemetry import metrics as lk
from prometheus_client.metrics import MetricWrapperBase

from services.common import metrics as m
from services.common.config import VARIABLES

# Every alert's runbook_url is RUNBOOK#<alert name in lower case>, a heading of the runbook.
RUNBOOK = "deploy/monitoring/runbook.md"


def family(metric: MetricWrapperBase) -> str:
    return metric.describe()[0].name


def total(counter: MetricWrapperBase) -> str:
    return family(counter) + "_total"


# --- metric names (declared in services/common/metrics.py and livekit-agents' telemetry) ---------

SESSIONS = total(m.SESSIONS)
SESSIONS_ACTIVE = family(m.SESSIONS_ACTIVE)
INTERRUPTIONS = total(m.INTERRUPTIONS)
PROVIDER_ERRORS = total(m.PROVIDER_ERRORS)
WORKER_LOAD = family(lk.CPU_LOAD_GAUGE)  # set by the worker's main process, with a `pid` label
CHILD_PROCESSES = family(lk.CHILD_PROC_GAUGE)
ACTIVE_JOBS = family(lk.RUNNING_JOB_GAUGE)
PROC_INITIALIZE = family(lk.PROC_INITIALIZE_TIME)
# livekit-server's own series (tests/support/promql.py LIVEKIT_SERVER_METRICS checks them against
# its Go source); they carry node_id.
LIVEKIT_ROOMS = "livekit_room_total"
UP = "up"  # attached by Prometheus to every target

# Provider component -> the stage histogram that observes each of its successful round trips.
PROVIDER_STAGES = {"stt": m.STT_DELAY, "llm": m.LLM_TTFT, "tts": m.TTS_TTFB}
assert tuple(PROVIDER_STAGES) == m.PROVIDER_COMPONENTS


@dataclass(frozen=True)
class Latency:
    """A latency histogram with its dashboard panel's title and description, and the quantiles
    recorded and shown."""

    histogram: MetricWrapperBase
    title: str
    description: str
    quantiles: tuple[float, ...]


LATENCIES = (
    Latency(m.RESPONSE_LATENCY, "Response latency",
            "From the end of the user's speech to the start of the agent's audio",
            (0.5, 0.95, 0.99)),
    Latency(m.CUT_IN_LATENCY, "Cut-in latency",
            "From a turn limit being reached to the start of the agent's cut-in audio",
            (0.5, 0.95, 0.99)),
    Latency(m.END_OF_UTTERANCE_DELAY, "End of utterance delay",
            "End of the user's speech to the end-of-turn decision", (0.5, 0.95)),
    Latency(m.STT_DELAY, "STT delay", "End of the user's speech to the final transcript",
            (0.5, 0.95)),
    Latency(m.LLM_TTFT, "LLM time to first token", "LLM request to first token", (0.5, 0.95)),
    Latency(m.TTS_TTFB, "TTS time to first byte", "TTS request to first audio byte", (0.5, 0.95)),
)
RESPONSE, CUT_IN = LATENCIES[0], LATENCIES[1]


def percentile(q: float) -> str:
    return f"p{round(q * 100)}"


def percentile_words(q: float) -> str:
    return f"{round(q * 100)}th percentile"


# --- thresholds ----------------------------------------------------------------------------------

# The worker reports itself full and gets no new jobs at load_threshold (LOAD_THRESHOLD's default).
LOAD_THRESHOLD = float(next(v.default for v in VARIABLES if v.name == "LOAD_THRESHOLD") or "0")
LOAD_WARNING = 0.6
ALERT_QUANTILE = 0.95
RESPONSE_P95_WARNING = 1.0  # seconds; dashboard colour only
RESPONSE_P95_MAX = 1.5
CUT_IN_P95_MAX = 1.0
PROVIDER_ERROR_RATIO_MAX = 0.1
PROVIDER_ERRORS_MIN = 0.01  # per second, so a lone error on a quiet provider does not page
FAILED_SESSIONS_WARNING = 0.05  # dashboard colour only
FAILED_SESSIONS_MAX = 0.2
FAILED_SESSIONS_MIN = 2  # failures in FAILED_WINDOW

# --- windows -------------------------------------------------------------------------------------



@dataclass(frozen=True)
class Minutes:
    """A duration: `5m` in PromQL and `for:`, "5 minutes" in alert text."""

    n: int

    def __str__(self) -> str:
        return f"{self.n}m"

    @property
    def words(self) -> str:
        return f"{self.n} minutes"

    @property
    def seconds(self) -> int:
        return 60 * self.n


RULE_WINDOW = Minutes(5)
FAILED_WINDOW = Minutes(15)
# How long a target that served an agent's metrics is remembered as that agent's worker (so a
# worker that went down still counts, as 0).
TARGET_MEMORY = "1h"

# --- names of the recording rules ----------------------------------------------------------------

TARGET_INFO = f"instance_agent:{m.NAMESPACE}_target:info"
WORKERS_UP = f"agent:{m.NAMESPACE}_workers_up:sum"
SESSIONS_ACTIVE_SUM = f"agent:{SESSIONS_ACTIVE}:sum"
SESSIONS_RATE = f"agent_outcome:{family(m.SESSIONS)}:rate{RULE_WINDOW}"
FAILED_INCREASE = f"agent:{family(m.SESSIONS)}_failed:increase{FAILED_WINDOW}"
FAILED_RATIO = f"agent:{family(m.SESSIONS)}_failed:ratio_rate{FAILED_WINDOW}"
INTERRUPTIONS_RATE = f"agent_kind:{family(m.INTERRUPTIONS)}:rate{RULE_WINDOW}"
PROVIDER_ERRORS_RATE = f"agent_component:{family(m.PROVIDER_ERRORS)}:rate{RULE_WINDOW}"
PROVIDER_SUCCESSES_RATE = f"agent_component:{m.NAMESPACE}_provider_successes:rate{RULE_WINDOW}"
PROVIDER_ERROR_RATIO = f"agent_component:{m.NAMESPACE}_provider_error_ratio:rate{RULE_WINDOW}"
WORKER_LOAD_AVG = f"instance:{WORKER_LOAD}:avg{RULE_WINDOW}"


def quantile_record(latency: Latency) -> str:
    return f"agent_quantile:{family(latency.histogram)}:histogram_quantile{RULE_WINDOW}"


# --- selectors and scopes ------------------------------------------------------------------------


def sel(metric: str, *matchers: str) -> str:
    """`metric{m1, m2}`, or the bare name when no matcher is left."""
    used = ", ".join(x for x in matchers if x)
    return f"{metric}{{{used}}}" if used else metric


def target_info(*matchers: str) -> str:
    """(job, instance) -> agent of the targets that served voice_agent_* series in TARGET_MEMORY
    (init_labels creates them all at once). lk_agents_* and `up` carry no `agent` label: joining
    on (job, instance) with this attaches it."""
    return (
        f"group by (job, instance, agent) (last_over_time({sel(SESSIONS, *matchers)}"
        f"[{TARGET_MEMORY}]))"
    )


@dataclass(frozen=True)
class Scope:
    agent: str  # matchers of voice_agent_* series
    instance: str  # matchers of per-target series without `agent` (lk_agents_*, up)
    window: str  # range of rate() and friends
    targets: str  # (job, instance, agent) of the selected worker targets
    all_targets: str  # every worker target that ever named its agent (within TARGET_MEMORY)


RULES = Scope(agent="", instance="", window=str(RULE_WINDOW), targets=TARGET_INFO,
              all_targets=TARGET_INFO)
AGENT_VAR = 'agent=~"$agent"'
INSTANCE_VAR = 'instance=~"$instance"'
NODE_VAR = 'node_id=~"$node"'
PANELS = Scope(
    agent=f"{AGENT_VAR}, {INSTANCE_VAR}",
    instance=INSTANCE_VAR,
    window="$__rate_interval",
    targets=target_info(AGENT_VAR, INSTANCE_VAR),
    all_targets=target_info(),
)

# --- the shared queries --------------------------------------------------------------------------


def attach_agent(expr: str, targets: str) -> str:
    return f"{expr} * on (job, instance) group_left (agent) {targets}"


def with_agent(expr: str, scope: Scope) -> str:
    """A per-target series with `agent` attached, for the scope's agents; targets that exposed no
    voice_agent_* series yet are kept too, without an agent name."""
    return (
        f"({attach_agent(expr, scope.targets)})\nor\n"
        f"({expr} unless on (job, instance) {scope.all_targets})"
    )


def workers_up(scope: Scope) -> str:
    """Live worker targets per agent; 0 when all are down or gone from service discovery."""
    return (
        f"sum by (agent) ({attach_agent(sel(UP, scope.instance), scope.targets)})\nor\n"
        f"0 * group by (agent) ({scope.targets})"
    )


def sessions_active(scope: Scope) -> str:
    # A livesum gauge vanishes with the last live process that touched it: agents known from
    # their counters count 0.
    return (
        f"sum by (agent) ({sel(SESSIONS_ACTIVE, scope.agent)})\nor\n"
        f"0 * group by (agent) ({sel(SESSIONS, scope.agent)})"
    )


def summed(fn: str, metric: str, scope: Scope, *, by: str = "agent", window: object = "",
           matchers: Iterable[str] = ()) -> str:
    """sum by (<by>) (<fn>(metric{scope, matchers}[window])), window defaulting to the scope's."""
    series = sel(metric, scope.agent, *matchers)
    return f"sum by ({by}) ({fn}({series}[{window or scope.window}]))"


FAILED = 'outcome="failed"'


def failed_ratio(scope: Scope, window: object) -> str:
    """Failed / ended sessions (NaN while none ended)."""
    failed = summed("rate", SESSIONS, scope, window=window, matchers=[FAILED])
    return f"{failed}\n/\n{summed('rate', SESSIONS, scope, window=window)}"


def quantile_of(q: float, bucket_rates: str) -> str:
    """The q-quantile per agent of a histogram's bucket rates (NaN while nothing was observed)."""
    return f"histogram_quantile({q}, sum by (agent, le) ({bucket_rates}))"


def quantile(q: float, latency: Latency, scope: Scope, window: str = "") -> str:
    buckets = sel(family(latency.histogram) + "_bucket", scope.agent)
    return quantile_of(q, f"rate({buckets}[{window or scope.window}])")


def provider_errors(scope: Scope) -> str:
    return summed("rate", PROVIDER_ERRORS, scope, by="agent, component")


def provider_successes(scope: Scope) -> str:
    """There is no request counter per provider; every successful round trip is observed once in
    its stage histogram, so their _count rates stand in for successful requests."""
    return "\nor\n".join(
        f"label_replace({summed('rate', family(h) + '_count', scope)}, "
        f'"component", "{component}", "", "")'
        for component, h in PROVIDER_STAGES.items()
    )


def provider_error_ratio(errors: str, successes: str) -> str:
    """errors / (errors + successes) per agent and component (NaN while the provider is idle)."""
    return (
        f"{errors}\n/ on (agent, component)\n"
        f"({errors}\n+ on (agent, component)\n({successes}))"
    )


def worker_load(scope: Scope, average: object = "") -> str:
    """lk_agents_worker_load of each worker (its main process alone sets it; `pid` dropped)."""
    series = sel(WORKER_LOAD, scope.instance)
    if average:
        series = f"avg_over_time({series}[{average}])"
    return f"max without (pid) ({series})"
