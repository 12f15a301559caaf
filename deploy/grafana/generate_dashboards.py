"""Generates the Grafana dashboards in deploy/grafana/dashboards/ (the JSON is committed).

    .venv/bin/python deploy/grafana/generate_dashboards.py           # rewrite the JSON files
    .venv/bin/python deploy/grafana/generate_dashboards.py --check   # exit 1 if they are stale

Metric names come from services/common/metrics.py (voice_agent_*), livekit-agents' telemetry
module (lk_agents_*) and livekit-server's Go source (livekit_*, process_*);
tests/deploy/test_dashboards.py checks every name against those sources.

Conventions the tests rely on:
- every panel, target and template variable uses the Prometheus datasource by uid `prometheus`;
- `job` and `instance` appear only as join keys or through the `$instance` variable;
- a panel whose queries can legitimately return no series (e.g. before any media flowed) says so
  in a description line starting with `May be empty:` (tests/support/promql.py reads it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
MAY_BE_EMPTY = "May be empty:"
LOAD_THRESHOLD = 0.7  # livekit-agents' production default load_threshold

# Label selectors driven by the template variables.
SEL = 'agent=~"$agent", instance=~"$instance"'
INST = 'instance=~"$instance"'
FAILED = f'{SEL}, outcome="failed"'
NODE = 'node_id=~"$node"'
RATE = "$__rate_interval"

# (job, instance) -> agent for the selected agents/instances; lk_agents_* and `up` have no `agent`
# label, so their panels join on this to filter by $agent and to name the agent in the legend.
TARGET_AGENT = f"group by (job, instance, agent) (voice_agent_sessions_total{{{SEL}}})"
# Same, remembering targets for an hour so that a target which went down still counts (as 0).
TARGET_AGENT_1H = (
    f"group by (job, instance, agent) (last_over_time(voice_agent_sessions_total{{{SEL}}}[1h]))"
)
# (job, instance) -> node_id of the livekit-server targets, to pick livekit-server's process_*
# series out of every process_* series (Prometheus exposes its own, too).
LIVEKIT_TARGET = f"group by (job, instance, node_id) (livekit_room_total{{{NODE}}})"


def by_agent(expr: str) -> str:
    """Attaches `agent` to a per-target series and keeps the selected agents' targets; targets
    without any voice_agent_* series yet are kept too, without an agent name."""
    return (
        f"({expr} * on (job, instance) group_left (agent) {TARGET_AGENT}) or ({expr} unless on "
        "(job, instance) group by (job, instance) (voice_agent_sessions_total))"
    )


UNNAMED = (
    " Workers that have exposed no voice_agent_* series yet are shown without an agent name,"
    " whatever the Agent filter."
)


def sessions_active() -> str:
    # livesum gauge: it vanishes with the last live process that touched it; agents known from
    # their counters then count 0.
    return (
        f"sum by (agent) (voice_agent_sessions_active{{{SEL}}}) "
        f"or 0 * group by (agent) (voice_agent_sessions_total{{{SEL}}})"
    )


def quantile(q: float, metric: str, window: str = RATE, by: str = "agent") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{SEL}}}[{window}])))"


def provider_error_ratio() -> str:
    errors = f"sum by (agent, component) (rate(voice_agent_provider_errors_total{{{SEL}}}[{RATE}]))"
    successes = " or ".join(
        f"label_replace(sum by (agent) (rate({metric}_count{{{SEL}}}[{RATE}])), "
        f'"component", "{component}", "", "")'
        for component, metric in (
            ("stt", "voice_agent_stt_delay_seconds"),
            ("llm", "voice_agent_llm_ttft_seconds"),
            ("tts", "voice_agent_tts_ttfb_seconds"),
        )
    )
    return f"{errors} / on (agent, component) ({errors} + on (agent, component) ({successes}))"


# --- panel builders ---------------------------------------------------------------------------


def target(expr: str, legend: str = "", instant: bool = False) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
    }


def describe(text: str, may_be_empty: str | None) -> str:
    return f"{text}\n\n{MAY_BE_EMPTY} {may_be_empty}" if may_be_empty else text


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    may_be_empty: str | None = None,
    max_: float | None = None,
    threshold_steps: tuple[tuple[float | None, str], ...] = (),
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line+area" if threshold_steps else "off"},
        },
        "min": 0,
        "thresholds": thresholds(*(threshold_steps or ((None, "green"),))),
        "unit": unit,
    }
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": describe(description, may_be_empty),
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "calcs": [],
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
        "_size": (w, h),
    }


def stat(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    w: int = 4,
    h: int = 4,
    threshold_steps: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    decimals: int | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "thresholds": thresholds(*threshold_steps),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": targets,
        "_size": (w, h),
    }


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Places panels left to right, wrapping at 24 columns; rows start a new line. Assigns ids
    and refIds."""
    panels: list[dict[str, Any]] = []
    x = y = line_h = 0
    for panel_id, item in enumerate(items, start=1):
        w, h = item.pop("_size")
        if item["type"] == "row" or x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        item["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        item["id"] = panel_id
        for n, tgt in enumerate(item.get("targets", [])):
            tgt["refId"] = chr(ord("A") + n)
        x, line_h = x + w, max(line_h, h)
        panels.append(item)
    return panels


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"qryType": 1, "query": query, "refId": f"PrometheusVariableQueryEditor-{name}"},
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "hide": 0,
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "annotations": {"list": []},
        "description": "Generated by deploy/grafana/generate_dashboards.py - do not edit by hand.",
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": layout(panels),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["voice-agents", "livekit"],
        "templating": {"list": variables},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --- the overview dashboard -------------------------------------------------------------------


def latency_targets(metric: str, quantiles: tuple[float, ...]) -> list[dict[str, Any]]:
    return [target(quantile(q, metric), f"{{{{agent}}}} p{round(q * 100)}") for q in quantiles]


def overview() -> dict[str, Any]:
    per_min = "* 60"
    panels = [
        row("Overview (selected time range)"),
        stat(
            "Workers up",
            "Scrape targets up per agent (targets that served the agent's metrics in the last "
            "hour; a target that went down counts 0).",
            [
                target(
                    f"sum by (agent) (up{{{INST}}} * on (job, instance) group_left (agent) "
                    f"{TARGET_AGENT_1H})",
                    "{{agent}}",
                    instant=True,
                )
            ],
            threshold_steps=((None, "red"), (1, "green")),
        ),
        stat(
            "Sessions active",
            "Sessions running now, summed over the agent's live job processes.",
            [target(sessions_active(), "{{agent}}", instant=True)],
        ),
        stat(
            "Sessions ended",
            "Sessions that ended in the selected time range, any outcome.",
            [
                target(
                    f"sum by (agent) (increase(voice_agent_sessions_total{{{SEL}}}[$__range]))",
                    "{{agent}}",
                    instant=True,
                )
            ],
            decimals=0,
        ),
        stat(
            "Failed sessions",
            "Share of the sessions ended in the time range that failed (empty value: none ended).",
            [
                target(
                    f"sum by (agent) (increase(voice_agent_sessions_total{{{FAILED}}}[$__range]))"
                    f" / sum by (agent) (increase(voice_agent_sessions_total{{{SEL}}}[$__range]))",
                    "{{agent}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            threshold_steps=((None, "green"), (0.05, "orange"), (0.2, "red")),
        ),
        stat(
            "Response latency p95",
            "95th percentile over the time range, end of user speech to agent audio start.",
            [
                target(
                    quantile(0.95, "voice_agent_response_latency_seconds", "$__range"),
                    "{{agent}}",
                    instant=True,
                )
            ],
            unit="s",
            threshold_steps=((None, "green"), (1.0, "orange"), (1.5, "red")),
        ),
        stat(
            "Interruptions",
            "Interruptions of any kind in the time range.",
            [
                target(
                    f"sum by (agent) (increase(voice_agent_interruptions_total{{{SEL}}}"
                    "[$__range]))",
                    "{{agent}}",
                    instant=True,
                )
            ],
            decimals=0,
        ),
        row("Sessions and interruptions"),
        timeseries(
            "Sessions active",
            "voice_agent_sessions_active per agent (livesum over job processes).",
            [target(sessions_active(), "{{agent}}")],
            w=8,
        ),
        timeseries(
            "Sessions ended by outcome",
            "Sessions ended per minute, by outcome (completed, failed).",
            [
                target(
                    f"sum by (agent, outcome) (rate(voice_agent_sessions_total{{{SEL}}}[{RATE}]))"
                    f" {per_min}",
                    "{{agent}} {{outcome}}",
                )
            ],
            unit="opm",
            w=8,
        ),
        timeseries(
            "Interruptions by kind",
            "Interruptions per minute by agent and kind: cut_in (agent cut the user off), "
            "barge_in (user interrupted the agent), preempted (user went on talking before a "
            "started reply was heard), suppressed (user spoke during protected speech), false "
            "(false interruption, the agent resumed).",
            [
                target(
                    f"sum by (agent, kind) (rate(voice_agent_interruptions_total{{{SEL}}}"
                    f"[{RATE}])) {per_min}",
                    "{{agent}} {{kind}}",
                )
            ],
            unit="opm",
            w=8,
        ),
        row("Latency"),
        timeseries(
            "Response latency",
            "From the end of the user's speech to the start of the agent's audio; p50/p95/p99.",
            latency_targets("voice_agent_response_latency_seconds", (0.5, 0.95, 0.99)),
            unit="s",
            threshold_steps=((None, "green"), (1.5, "red")),
        ),
        timeseries(
            "Cut-in latency",
            "From a turn limit being reached to the start of the agent's cut-in audio; "
            "p50/p95/p99. Agents that never cut in show no value (their quantiles are NaN).",
            latency_targets("voice_agent_cut_in_latency_seconds", (0.5, 0.95, 0.99)),
            unit="s",
            threshold_steps=((None, "green"), (1.0, "red")),
        ),
        timeseries(
            "End of utterance delay",
            "End of the user's speech to the end-of-turn decision; p50/p95.",
            latency_targets("voice_agent_end_of_utterance_delay_seconds", (0.5, 0.95)),
            unit="s",
            w=6,
        ),
        timeseries(
            "STT delay",
            "End of the user's speech to the final transcript; p50/p95.",
            latency_targets("voice_agent_stt_delay_seconds", (0.5, 0.95)),
            unit="s",
            w=6,
        ),
        timeseries(
            "LLM time to first token",
            "LLM request to first token; p50/p95.",
            latency_targets("voice_agent_llm_ttft_seconds", (0.5, 0.95)),
            unit="s",
            w=6,
        ),
        timeseries(
            "TTS time to first byte",
            "TTS request to first audio byte; p50/p95.",
            latency_targets("voice_agent_tts_ttfb_seconds", (0.5, 0.95)),
            unit="s",
            w=6,
        ),
        row("Providers"),
        timeseries(
            "Provider errors by component",
            "Provider errors per minute (stt, llm, tts), recoverable or not.",
            [
                target(
                    f"sum by (agent, component) (rate(voice_agent_provider_errors_total{{{SEL}}}"
                    f"[{RATE}])) {per_min}",
                    "{{agent}} {{component}}",
                )
            ],
            unit="opm",
        ),
        timeseries(
            "Provider error ratio",
            "errors / (errors + successful round trips) per component; a successful round trip "
            "is one observation of the stage histogram (STT delay, LLM TTFT, TTS TTFB). "
            "No value while the provider is idle.",
            [target(provider_error_ratio(), "{{agent}} {{component}}")],
            unit="percentunit",
            threshold_steps=((None, "green"), (0.1, "red")),
        ),
        row("Worker (livekit-agents)"),
        timeseries(
            f"Worker load vs threshold ({LOAD_THRESHOLD})",
            "lk_agents_worker_load of each worker. At load_threshold (0.7 in production) the "
            "worker reports itself full and gets no new jobs." + UNNAMED,
            [
                target(
                    by_agent(f"max without (pid) (lk_agents_worker_load{{{INST}}})"),
                    "{{agent}} {{instance}}",
                )
            ],
            unit="percentunit",
            max_=1,
            threshold_steps=((None, "green"), (0.6, "orange"), (LOAD_THRESHOLD, "red")),
            w=8,
        ),
        timeseries(
            "Job processes",
            "Child processes of each worker (warm and running job processes, inference) and "
            "active jobs (0 until the worker's first job)." + UNNAMED,
            [
                target(
                    by_agent(f"lk_agents_child_process_count{{{INST}}}"),
                    "{{agent}} {{instance}} processes",
                ),
                target(
                    by_agent(
                        f"(lk_agents_active_job_count{{{INST}}} or 0 * max without (pid) "
                        f"(lk_agents_worker_load{{{INST}}}))"
                    ),
                    "{{agent}} {{instance}} active jobs",
                ),
            ],
            w=8,
        ),
        timeseries(
            "Job process start time",
            "Time to initialise a job process (lk_agents_proc_initialize_duration_seconds); "
            "p50/p95." + UNNAMED,
            [
                target(
                    f"histogram_quantile({q}, sum by (agent, le) ("
                    + by_agent(
                        f"rate(lk_agents_proc_initialize_duration_seconds_bucket{{{INST}}}[{RATE}])"
                    )
                    + "))",
                    f"{{{{agent}}}} p{round(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            unit="s",
            w=8,
            may_be_empty="until the worker has started its first process (production workers "
            "warm idle processes at start-up; dev mode starts none before the first job).",
        ),
        row("LiveKit server"),
        timeseries(
            "Rooms",
            "Rooms open on each livekit-server node (livekit_room_total).",
            [target(f"sum by (node_id) (livekit_room_total{{{NODE}}})", "{{node_id}}")],
            w=6,
        ),
        timeseries(
            "Participants",
            "Participants connected to each node, agents included (livekit_participant_total).",
            [target(f"sum by (node_id) (livekit_participant_total{{{NODE}}})", "{{node_id}}")],
            w=6,
        ),
        timeseries(
            "Tracks",
            "Tracks currently published and subscribed, by kind.",
            [
                target(
                    f"sum by (kind) (livekit_track_published_total{{{NODE}}})", "published {{kind}}"
                ),
                target(
                    f"sum by (kind) (livekit_track_subscribed_total{{{NODE}}})",
                    "subscribed {{kind}}",
                ),
            ],
            w=12,
            may_be_empty="until a track was published and subscribed on the node since it "
            "started (the series are created on first use).",
        ),
        timeseries(
            "Packets",
            "RTP packets per second by direction and transmission (initial, retransmit).",
            [
                target(
                    f"sum by (direction, transmission) (rate(livekit_packet_total{{{NODE}}}"
                    f"[{RATE}]))",
                    "{{direction}} {{transmission}}",
                )
            ],
            unit="pps",
            w=8,
            may_be_empty="until media has flowed through the node since it started.",
        ),
        timeseries(
            "Bandwidth",
            "RTP bytes per second by direction.",
            [
                target(
                    f"sum by (direction) (rate(livekit_packet_bytes{{{NODE}}}[{RATE}]))",
                    "{{direction}}",
                )
            ],
            unit="Bps",
            w=8,
            may_be_empty="until media has flowed through the node since it started.",
        ),
        timeseries(
            "Packet loss",
            "Lost packets per second reported by RTCP, by direction and track type.",
            [
                target(
                    f"sum by (direction, type) (rate(livekit_packet_loss_total{{{NODE}}}[{RATE}]))",
                    "{{direction}} {{type}}",
                )
            ],
            unit="pps",
            w=8,
            may_be_empty="until packet loss was first reported on the node (healthy local "
            "runs never create the series).",
        ),
        timeseries(
            "livekit-server CPU",
            "CPU used by the livekit-server process, in cores (Go client's process collector).",
            [
                target(
                    f"rate(process_cpu_seconds_total[{RATE}]) * on (job, instance) "
                    f"group_left (node_id) {LIVEKIT_TARGET}",
                    "{{node_id}}",
                )
            ],
            w=12,
        ),
        timeseries(
            "livekit-server memory",
            "Resident memory of the livekit-server process.",
            [
                target(
                    f"process_resident_memory_bytes * on (job, instance) group_left (node_id) "
                    f"{LIVEKIT_TARGET}",
                    "{{node_id}}",
                )
            ],
            unit="bytes",
            w=12,
        ),
    ]
    variables = [
        variable("agent", "Agent", "label_values(voice_agent_sessions_total, agent)"),
        variable(
            "instance",
            "Worker",
            'label_values(voice_agent_sessions_total{agent=~"$agent"}, instance)',
        ),
        variable("node", "LiveKit node", "label_values(livekit_room_total, node_id)"),
    ]
    return dashboard("voice-agents-overview", "Voice agents - overview", panels, variables)


DASHBOARDS = {"voice-agents-overview.json": overview}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON files are stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
