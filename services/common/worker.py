"""The AgentServer both services run: prewarmed Silero VAD, explicit agent name, health, metrics,
drain and load settings from configuration."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable

from livekit.agents import AgentServer, JobContext, JobProcess
from livekit.plugins import silero

from . import metrics, pod_cost, providers
from .settings import CommonSettings

logger = logging.getLogger("voice_agents.worker")


def prewarm(proc: JobProcess, settings: CommonSettings) -> None:
    """Runs once per job process, before it is offered a job (a job process serves one call).

    Everything slow the call would otherwise do first on its event loop, while the caller is
    already talking, happens here: the Silero model, the providers' clients (TLS contexts,
    pydantic models) and the SDK modules imported on first use. The settings are the ones the
    worker validated at start-up, for the command it runs.
    """
    started = time.perf_counter()
    proc.userdata["settings"] = settings
    proc.userdata["vad"] = silero.VAD.load()
    proc.userdata["providers"] = providers.build(settings)
    providers.warm_up()
    logger.debug("job process warmed", extra={"seconds": round(time.perf_counter() - started, 3)})


def build_server(
    settings: CommonSettings, entrypoint: Callable[[JobContext], Awaitable[None]]
) -> AgentServer:
    server = AgentServer(
        setup_fnc=functools.partial(prewarm, settings=settings),
        host=settings.http_bind_address,
        port=settings.health_port,
        prometheus_port=settings.metrics_port,
        drain_timeout=settings.drain_timeout_seconds,
        load_threshold=settings.load_threshold,
        num_idle_processes=settings.num_idle_processes,
        # fail fast: the orchestrator restarts a worker that cannot reach LiveKit
        max_retry=settings.livekit_max_retry,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    server.on("worker_started", lambda: _on_worker_started(server, settings))
    return server


def _on_worker_started(server: AgentServer, settings: CommonSettings) -> None:
    # Only now: the framework empties PROMETHEUS_MULTIPROC_DIR when the worker starts, and series
    # created before that would be written to deleted files. Created here, every voice_agent_*
    # series exists from the first scrape, before any session.
    metrics.init_labels(settings.service)
    _mark_dead_job_processes(server)
    if settings.pod_deletion_cost:
        track_pod_deletion_cost(server)


def track_pod_deletion_cost(server: AgentServer, pod: pod_cost.PodRef | None = None
                            ) -> pod_cost.PodDeletionCost | None:
    """Follow the worker's job starts and ends with its pod's deletion cost (pod_cost). Without a
    pod to patch, say why once and run on: scaling then only loses its preference for idle pods.
    """
    pool = getattr(server, "_proc_pool", None)  # the framework's process pool is private
    try:
        pod = pod or pod_cost.PodRef.in_cluster()
        if pool is None:
            raise RuntimeError("the framework's process pool is not reachable")
    except (RuntimeError, OSError) as e:
        logger.warning("POD_DELETION_COST is on but cannot be kept: %s", e)
        return None
    updater = pod_cost.PodDeletionCost(pod, lambda: len(server.active_jobs))
    pool.on("process_job_launched", updater.changed)
    pool.on("process_closed", updater.changed)
    updater.start()
    return updater


def _mark_dead_job_processes(server: AgentServer) -> None:
    """Drop the live-gauge files of job processes that exited, or their values linger in /metrics.

    The framework does not do this itself; its process pool is private, hence the guard.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    pool = getattr(server, "_proc_pool", None)
    if pool is None:
        logger.warning("cannot watch job processes: metrics of dead processes may linger")
        return

    def closed(proc: object) -> None:
        pid = getattr(proc, "pid", None)
        if pid:
            multiprocess.mark_process_dead(pid)

    pool.on("process_closed", closed)
