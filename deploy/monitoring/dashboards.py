"""The Grafana dashboards, built with grafana-foundation-sdk from definition.py.

Conventions the tests rely on (tests/deploy/test_dashboards.py, tests/support/promql.py):
- every panel, query and query variable uses the datasource of the `datasource` variable, whose
  default is the provisioned one (deploy/grafana/provisioning/datasources/prometheus.yml);
- `job` and `instance` appear only as join keys or through the `$instance` variable;
- a panel whose queries can legitimately return no series (e.g. before any media flowed) says so
  in a description line starting with `May be empty:`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from deploy.monitoring import definition as d
from deploy.monitoring.definition import NODE_VAR, PANELS, sel

MAY_BE_EMPTY = "May be empty:"
DATASOURCE_VAR = "datasource"
# What the datasource variable selects by default: the provisioned datasource (compose) and the
# uid kube-prometheus-stack gives its own Prometheus datasource.
DEFAULT_DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
SCHEMA_VERSION = 39
RANGE = "$__range"
UNNAMED = (
    " Workers that have exposed no voice_agent_* series yet are shown without an agent name,"
    " whatever the Agent filter."
)
Steps = tuple[tuple[float | None, str], ...]
Panel = timeseries.Panel | stat.Panel


def query(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .editor_mode(pm.QueryEditorMode.CODE)
        .datasource(DATASOURCE)
    )


def per_minute(expr: str) -> str:
    return f"{expr} * 60"


def thresholds(steps: Steps) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def common_parts(panel: Panel, title: str, description: str, targets: list[prometheus.Dataquery],
                 unit: str, w: int, h: int) -> None:
    for n, target in enumerate(targets):
        target.ref_id(chr(ord("A") + n))
    panel.title(title).description(description).datasource(DATASOURCE).targets(targets)
    panel.unit(unit).span(w).height(h)


def graph(title: str, description: str, targets: list[prometheus.Dataquery], *,
          unit: str = "short", w: int = 12, h: int = 8, may_be_empty: str | None = None,
          max_: float | None = None, steps: Steps = ()) -> timeseries.Panel:
    if may_be_empty:
        description = f"{description}\n\n{MAY_BE_EMPTY} {may_be_empty}"
    panel = timeseries.Panel()
    common_parts(panel, title, description, [t.range() for t in targets], unit, w, h)
    modes = common.GraphTresholdsStyleMode
    style = modes.LINE_AND_AREA if steps else modes.OFF
    panel.min(0).thresholds(thresholds(steps or ((None, "green"),)))
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
    panel.draw_style(common.GraphDrawStyle.LINE).fill_opacity(10).line_width(1)
    panel.show_points(common.VisibilityMode.NEVER).span_nulls(False)
    panel.thresholds_style(cb.GraphThresholdsStyleConfig().mode(style))
    panel.legend(cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                 .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs([]))
    panel.tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                  .sort(common.SortOrder.DESCENDING))
    if max_ is not None:
        panel.max(max_)
    return panel


def single(title: str, description: str, expr: str, *, unit: str = "short",
           steps: Steps = ((None, "green"),), decimals: int | None = None) -> stat.Panel:
    """A stat panel: one instant value per agent."""
    panel = stat.Panel()
    common_parts(panel, title, description, [query(expr, "{{agent}}").instant()], unit, 4, 4)
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    panel.thresholds(thresholds(steps))
    panel.color_mode(common.BigValueColorMode.VALUE).graph_mode(common.BigValueGraphMode.NONE)
    panel.justify_mode(common.BigValueJustifyMode.AUTO).orientation(common.VizOrientation.AUTO)
    panel.text_mode(common.BigValueTextMode.AUTO)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
    if decimals is not None:
        panel.decimals(decimals)
    return panel


def latency_graph(latency: d.Latency, *, w: int = 6, note: str = "",
                  red: float | None = None) -> timeseries.Panel:
    qs = "/".join(d.percentile(q) for q in latency.quantiles)
    return graph(
        latency.title, f"{latency.description}; {qs}.{note}",
        [query(d.quantile(q, latency, PANELS), f"{{{{agent}}}} {d.percentile(q)}")
         for q in latency.quantiles],
        unit="s", w=w, steps=((None, "green"), (red, "red")) if red is not None else (),
    )


def node(metric: str) -> str:
    return sel(metric, NODE_VAR)


def livekit_process(metric: str) -> str:
    """A process_* series of the livekit-server targets with their node_id (Prometheus and
    others expose process_* series too)."""
    targets = f"group by (job, instance, node_id) ({node(d.LIVEKIT_ROOMS)})"
    return f"{metric} * on (job, instance) group_left (node_id) {targets}"


# --- the overview dashboard ----------------------------------------------------------------------


def overview_rows() -> Iterable[tuple[str, list[Panel]]]:
    inst = PANELS.instance
    rate = PANELS.window
    yield "Overview (selected time range)", [
        single("Workers up", "Scrape targets up per agent (targets that served the agent's metrics "
               "in the last hour; a target that went down counts 0).", d.workers_up(PANELS),
               steps=((None, "red"), (1, "green"))),
        single("Sessions active", "Sessions running now, summed over the agent's live job "
               "processes.", d.sessions_active(PANELS)),
        single("Sessions ended", "Sessions that ended in the selected time range, any outcome.",
               d.summed("increase", d.SESSIONS, PANELS, window=RANGE), decimals=0),
        single("Failed sessions", "Share of the sessions ended in the time range that failed "
               "(empty value: none ended).", d.failed_ratio(PANELS, RANGE), unit="percentunit",
               steps=((None, "green"), (d.FAILED_SESSIONS_WARNING, "orange"),
                      (d.FAILED_SESSIONS_MAX, "red"))),
        single(f"{d.RESPONSE.title} {d.percentile(d.ALERT_QUANTILE)}",
               f"{d.percentile_words(d.ALERT_QUANTILE)} over the time range, end of user "
               "speech to agent audio start.",
               d.quantile(d.ALERT_QUANTILE, d.RESPONSE, PANELS, RANGE), unit="s",
               steps=((None, "green"), (d.RESPONSE_P95_WARNING, "orange"),
                      (d.RESPONSE_P95_MAX, "red"))),
        single("Interruptions", "Interruptions of any kind in the time range.",
               d.summed("increase", d.INTERRUPTIONS, PANELS, window=RANGE), decimals=0),
    ]
    yield "Sessions and interruptions", [
        graph("Sessions active", f"{d.SESSIONS_ACTIVE} per agent (livesum over job processes).",
              [query(d.sessions_active(PANELS), "{{agent}}")], w=8),
        graph("Sessions ended by outcome", "Sessions ended per minute, by outcome (completed, "
              "failed).", [query(per_minute(d.summed("rate", d.SESSIONS, PANELS,
                                                     by="agent, outcome")),
                                 "{{agent}} {{outcome}}")], unit="opm", w=8),
        graph("Interruptions by kind",
              "Interruptions per minute by agent and kind: cut_in (agent cut the user off), "
              "barge_in (user interrupted the agent), preempted (user went on talking before a "
              "started reply was heard), suppressed (user spoke during protected speech), false "
              "(false interruption, the agent resumed).",
              [query(per_minute(d.summed("rate", d.INTERRUPTIONS, PANELS, by="agent, kind")),
                     "{{agent}} {{kind}}")], unit="opm", w=8),
    ]
    yield "Latency", [
        latency_graph(d.RESPONSE, w=12, red=d.RESPONSE_P95_MAX),
        latency_graph(d.CUT_IN, w=12, red=d.CUT_IN_P95_MAX, note=" Agents that never cut in show "
                      "no value (their quantiles are NaN)."),
        *(latency_graph(latency) for latency in d.LATENCIES[2:]),
    ]
    yield "Providers", [
        graph("Provider errors by component", "Provider errors per minute (stt, llm, tts), "
              "recoverable or not.", [query(per_minute(d.provider_errors(PANELS)),
                                            "{{agent}} {{component}}")], unit="opm"),
        graph("Provider error ratio",
              "errors / (errors + successful round trips) per component; a successful round trip "
              "is one observation of the stage histogram (STT delay, LLM TTFT, TTS TTFB). "
              "No value while the provider is idle.",
              [query(d.provider_error_ratio(d.provider_errors(PANELS),
                                            d.provider_successes(PANELS)),
                     "{{agent}} {{component}}")],
              unit="percentunit", steps=((None, "green"), (d.PROVIDER_ERROR_RATIO_MAX, "red"))),
    ]
    proc_buckets = f"rate({sel(d.PROC_INITIALIZE + '_bucket', inst)}[{rate}])"
    yield "Worker (livekit-agents)", [
        graph(f"Worker load vs threshold ({d.LOAD_THRESHOLD})",
              f"{d.WORKER_LOAD} of each worker. At load_threshold ({d.LOAD_THRESHOLD} in "
              "production) the worker reports itself full and gets no new jobs." + UNNAMED,
              [query(d.with_agent(d.worker_load(PANELS), PANELS), "{{agent}} {{instance}}")],
              unit="percentunit", max_=1, w=8,
              steps=((None, "green"), (d.LOAD_WARNING, "orange"), (d.LOAD_THRESHOLD, "red"))),
        graph("Job processes", "Child processes of each worker (warm and running job processes, "
              "inference) and active jobs (0 until the worker's first job)." + UNNAMED,
              [query(d.with_agent(sel(d.CHILD_PROCESSES, inst), PANELS),
                     "{{agent}} {{instance}} processes"),
               query(d.with_agent(f"({sel(d.ACTIVE_JOBS, inst)} or 0 * "
                                  f"{d.worker_load(PANELS)})", PANELS),
                     "{{agent}} {{instance}} active jobs")], w=8),
        graph("Job process start time", f"Time to initialise a job process ({d.PROC_INITIALIZE}); "
              "p50/p95." + UNNAMED,
              [query(d.quantile_of(q, d.with_agent(proc_buckets, PANELS)),
                     f"{{{{agent}}}} {d.percentile(q)}")
               for q in (0.5, 0.95)],
              unit="s", w=8, may_be_empty="until the worker has started its first process "
              "(production workers warm idle processes at start-up; dev mode starts none before "
              "the first job)."),
    ]
    media = "until media has flowed through the node since it started."
    yield "LiveKit server", [
        graph("Rooms", f"Rooms open on each livekit-server node ({d.LIVEKIT_ROOMS}).",
              [query(f"sum by (node_id) ({node(d.LIVEKIT_ROOMS)})", "{{node_id}}")], w=6),
        graph("Participants", "Participants connected to each node, agents included "
              "(livekit_participant_total).",
              [query(f"sum by (node_id) ({node('livekit_participant_total')})", "{{node_id}}")],
              w=6),
        graph("Tracks", "Tracks currently published and subscribed, by kind.",
              [query(f"sum by (kind) ({node(f'livekit_track_{state}_total')})",
                     f"{state} {{{{kind}}}}") for state in ("published", "subscribed")],
              may_be_empty="until a track was published and subscribed on the node since it "
              "started (the series are created on first use)."),
        graph("Packets", "RTP packets per second by direction and transmission (initial, "
              "retransmit).", [query(f"sum by (direction, transmission) "
                                     f"(rate({node('livekit_packet_total')}[{rate}]))",
                                     "{{direction}} {{transmission}}")],
              unit="pps", w=8, may_be_empty=media),
        graph("Bandwidth", "RTP bytes per second by direction.",
              [query(f"sum by (direction) (rate({node('livekit_packet_bytes')}[{rate}]))",
                     "{{direction}}")], unit="Bps", w=8, may_be_empty=media),
        graph("Packet loss", "Lost packets per second reported by RTCP, by direction and track "
              "type.", [query(f"sum by (direction, type) "
                              f"(rate({node('livekit_packet_loss_total')}[{rate}]))",
                              "{{direction}} {{type}}")],
              unit="pps", w=8, may_be_empty="until packet loss was first reported on the node "
              "(healthy local runs never create the series)."),
        graph("livekit-server CPU", "CPU used by the livekit-server process, in cores (Go "
              "client's process collector).",
              [query(livekit_process(f"rate(process_cpu_seconds_total[{rate}])"),
                     "{{node_id}}")]),
        graph("livekit-server memory", "Resident memory of the livekit-server process.",
              [query(livekit_process("process_resident_memory_bytes"), "{{node_id}}")],
              unit="bytes"),
    ]


def query_variable(name: str, label: str, expr: str) -> db.QueryVariable:
    """A multi-value variable whose 'All' is `.*` (tests/support/promql.py substitutes that)."""
    editor = {"qryType": 1, "query": expr, "refId": f"PrometheusVariableQueryEditor-{name}"}
    return (
        db.QueryVariable(name).label(label).datasource(DATASOURCE).query(editor)
        .include_all(True).multi(True).all_value(".*")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def overview() -> dm.Dashboard:
    builder = (
        db.Dashboard("Voice agents - overview")
        .uid("voice-agents-overview")
        .description("Generated by `python -m deploy.monitoring` - do not edit by hand.")
        .tags(["voice-agents", "livekit"])
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("")
        .with_variable(
            db.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus")
            .current(dm.VariableOption(selected=True, text="Prometheus",
                                       value=DEFAULT_DATASOURCE.uid or ""))
        )
        .with_variable(query_variable("agent", "Agent", f"label_values({d.SESSIONS}, agent)"))
        .with_variable(query_variable(
            "instance", "Worker", f"label_values({sel(d.SESSIONS, d.AGENT_VAR)}, instance)"))
        .with_variable(query_variable("node", "LiveKit node",
                                      f"label_values({d.LIVEKIT_ROOMS}, node_id)"))
    )
    panel_id = 0
    for title, panels in overview_rows():
        panel_id += 1
        builder.with_row(db.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            builder.with_panel(panel.id(panel_id))
    dashboard = builder.build()
    dashboard.schema_version = SCHEMA_VERSION  # the builder writes an older one by default
    return dashboard


DASHBOARDS = {"voice-agents-overview.json": overview}


def render() -> dict[str, str]:
    """File name in deploy/grafana/dashboards/ -> its JSON."""
    return {
        name: json.dumps(build(), cls=JSONEncoder, indent=2) + "\n"
        for name, build in DASHBOARDS.items()
    }
