"""The recording rules and alerts, from definition.py, as Prometheus rule files.

The compose Prometheus loads deploy/prometheus/rules/*.yml directly; the Helm chart embeds the
same groups in a PrometheusRule (helm/voice-agents/files/rules links there). Labels used: `agent`,
`kind`, `outcome`, `component` (bounded, services/common/metrics.py) and `job`/`instance` only as
join keys - never their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from deploy.monitoring import definition as d
from deploy.monitoring.definition import RULES, Minutes

RecordingRule = dict[str, Any]


def record(name: str, expr: str, **labels: str) -> RecordingRule:
    rule: RecordingRule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def recording_rules() -> list[RecordingRule]:
    quantiles = [
        record(d.quantile_record(latency), d.quantile(q, latency, RULES), quantile=str(q))
        for latency in d.LATENCIES
        for q in latency.quantiles
    ]
    return [
        record(d.TARGET_INFO, d.target_info()),
        record(d.WORKERS_UP, d.workers_up(RULES)),
        record(d.SESSIONS_ACTIVE_SUM, d.sessions_active(RULES)),
        record(d.SESSIONS_RATE, d.summed("rate", d.SESSIONS, RULES, by="agent, outcome")),
        record(d.FAILED_INCREASE, d.summed("increase", d.SESSIONS, RULES,
                                           window=d.FAILED_WINDOW, matchers=[d.FAILED])),
        record(d.FAILED_RATIO, d.failed_ratio(RULES, d.FAILED_WINDOW)),
        record(d.INTERRUPTIONS_RATE, d.summed("rate", d.INTERRUPTIONS, RULES, by="agent, kind")),
        *quantiles,
        record(d.PROVIDER_ERRORS_RATE, d.provider_errors(RULES)),
        record(d.PROVIDER_SUCCESSES_RATE, d.provider_successes(RULES)),
        record(d.PROVIDER_ERROR_RATIO,
               d.provider_error_ratio(d.PROVIDER_ERRORS_RATE, d.PROVIDER_SUCCESSES_RATE)),
        record(d.WORKER_LOAD_AVG, d.with_agent(d.worker_load(RULES, average=d.RULE_WINDOW), RULES)),
    ]


# --- alerts --------------------------------------------------------------------------------------

# Go-template pieces of the annotations (Prometheus renders them when the alert fires).
AGENT = "{{ $labels.agent }}"
INSTANCE = "{{ $labels.instance }}"
COMPONENT = "{{ $labels.component }}"
SECONDS = "{{ $value | humanizeDuration }}"
PERCENT = "{{ $value | humanizePercentage }}"
THE_AGENTS = f"{{{{ if $labels.agent }}}}the {AGENT} {{{{ end }}}}"  # "the interrupter " or ""


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: Minutes
    severity: str
    summary: str
    description: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": str(self.for_),
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{d.RUNBOOK}#{self.name.lower()}",
            },
        }


def seconds(value: float) -> str:
    return f"{value:g}s"


def alerts() -> list[Alert]:
    five, ten = Minutes(5), Minutes(10)  # `for:` durations
    load_alert = (
        f"The {d.RULE_WINDOW.n} minute average load of {THE_AGENTS}worker "
        f"{INSTANCE} has been at or above"
    )
    processes_missing = (
        f"({d.CHILD_PROCESSES} == 0\nor\n{d.ACTIVE_JOBS} > {d.CHILD_PROCESSES})"
    )
    down = f"({d.UP} == 0)"
    p95 = f'{{quantile="{d.ALERT_QUANTILE}"}}'
    p95_name, p95_words = d.percentile(d.ALERT_QUANTILE), d.percentile_words(d.ALERT_QUANTILE)
    errors_per_window = round(d.PROVIDER_ERRORS_MIN * d.RULE_WINDOW.seconds)
    return [
        Alert(
            "VoiceAgentNoWorkerUp", f"{d.WORKERS_UP} == 0", Minutes(2), "critical",
            f"No {AGENT} worker is up",
            f"Every scrape target that served {AGENT} metrics in the last hour is down or gone; "
            "calls routed to this agent are not being answered.",
        ),
        # Any target that served the framework's lk_agents_* metrics in TARGET_MEMORY; the agent
        # is named when the worker has exposed voice_agent_* series.
        Alert(
            "VoiceAgentWorkerDown",
            f"{d.attach_agent(down, d.TARGET_INFO)}\nor on (job, instance)\n"
            f"{down} and on (job, instance) "
            f"last_over_time({d.WORKER_LOAD}[{d.TARGET_MEMORY}])",
            five, "warning",
            f"Worker {INSTANCE} is down",
            f"Prometheus has failed to scrape the {{{{ if $labels.agent }}}}{AGENT} {{{{ end }}}}"
            f"worker at {INSTANCE} for {five.words}.",
        ),
        Alert(
            "VoiceAgentWorkersAbsent", f"absent({d.WORKER_LOAD})", ten, "critical",
            "No voice agent worker reports metrics",
            f"No target has exposed {d.WORKER_LOAD} for {ten.words}: no worker is running or "
            "scraped, or PROMETHEUS_MULTIPROC_DIR was not exported before Python started.",
        ),
        Alert(
            "VoiceAgentResponseLatencyHigh",
            f"{d.quantile_record(d.RESPONSE)}{p95} > {d.RESPONSE_P95_MAX}", ten, "warning",
            f"{AGENT} response latency {p95_name} is {SECONDS}",
            f"The {p95_words} from the end of the user's speech to the start of the agent's "
            f"audio has been above {seconds(d.RESPONSE_P95_MAX)} for {ten.words} (now {SECONDS}). "
            "Check the stage latencies (end of utterance, STT, LLM TTFT, TTS TTFB).",
        ),
        Alert(
            "VoiceAgentCutInLatencyHigh",
            f"{d.quantile_record(d.CUT_IN)}{p95} > {d.CUT_IN_P95_MAX:g}", ten, "warning",
            f"{AGENT} cut-in latency {p95_name} is {SECONDS}",
            f"The {p95_words} from a turn limit being reached to the start of the cut-in audio "
            f"has been above {seconds(d.CUT_IN_P95_MAX)} for {ten.words} (now {SECONDS}).",
        ),
        Alert(
            "VoiceAgentProviderErrorsHigh",
            f"{d.PROVIDER_ERROR_RATIO} > {d.PROVIDER_ERROR_RATIO_MAX}\nand on (agent, component)\n"
            f"{d.PROVIDER_ERRORS_RATE} > {d.PROVIDER_ERRORS_MIN}",
            five, "warning",
            f"{AGENT} {COMPONENT} provider errors at {PERCENT}",
            f"More than {d.PROVIDER_ERROR_RATIO_MAX:.0%} of {COMPONENT} provider requests of "
            f"{AGENT} failed over {d.RULE_WINDOW.words} (now {PERCENT}, and more than "
            f"{errors_per_window} errors per {d.RULE_WINDOW.words}), for {five.words}.",
        ),
        Alert(
            "VoiceAgentSessionsFailing",
            f"{d.FAILED_RATIO} > {d.FAILED_SESSIONS_MAX}\nand on (agent)\n"
            f"{d.FAILED_INCREASE} >= {d.FAILED_SESSIONS_MIN}",
            five, "critical",
            f"{AGENT}: {PERCENT} of sessions fail",
            f"More than {d.FAILED_SESSIONS_MAX:.0%} of the {AGENT} sessions that ended in the last "
            f"{d.FAILED_WINDOW.words} failed (at least "
            f"{d.FAILED_SESSIONS_MIN} failures), for {five.words}.",
        ),
        Alert(
            "VoiceAgentWorkerLoadNearThreshold", f"{d.WORKER_LOAD_AVG} >= {d.LOAD_WARNING}", ten,
            "warning",
            f"Worker {INSTANCE} load {PERCENT} nears {d.LOAD_THRESHOLD:.0%}",
            f"{load_alert} {d.LOAD_WARNING} for {ten.words}; at {d.LOAD_THRESHOLD} "
            "(load_threshold) it stops taking jobs. Add replicas.",
        ),
        Alert(
            "VoiceAgentWorkerLoadAtThreshold", f"{d.WORKER_LOAD_AVG} >= {d.LOAD_THRESHOLD}", five,
            "critical",
            f"Worker {INSTANCE} is full (load {PERCENT})",
            f"{load_alert} load_threshold ({d.LOAD_THRESHOLD}) for {five.words}; LiveKit no "
            "longer dispatches jobs to it.",
        ),
        # Each job runs in its own child process and production workers keep idle processes warm
        # (num_idle_processes > 0): a worker without any, or with fewer than active jobs, has lost
        # its job processes.
        Alert(
            "VoiceAgentJobProcessesMissing", d.with_agent(processes_missing, RULES), five,
            "warning",
            f"Worker {INSTANCE} is missing job processes",
            f"{{{{ if $labels.agent }}}}The {AGENT} worker{{{{ else }}}}Worker{{{{ end }}}} "
            f"{INSTANCE} has had no job process (warm or running), or fewer processes than active "
            f"jobs, for {five.words}; new calls will be slow to start or fail.",
        ),
    ]


# --- rule files ----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = (
    "# Generated by `python -m deploy.monitoring` from deploy/monitoring/ - do not edit by hand.\n"
    "# Standard rule-file format: the compose Prometheus loads it, the Helm chart embeds its\n"
    "# groups in a PrometheusRule.\n"
)


def rule_file(group: str, rules: list[dict[str, Any]]) -> str:
    body = {"groups": [{"name": group, "rules": rules}]}
    return HEADER + yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=1000)


def render() -> dict[str, str]:
    """File name in deploy/prometheus/rules/ -> its text."""
    return {
        "voice_agent_recording.yml": rule_file("voice-agent.recording", recording_rules()),
        "voice_agent_alerts.yml": rule_file("voice-agent.alerts", [a.rule() for a in alerts()]),
    }
