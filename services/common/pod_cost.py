"""Keep this pod's `controller.kubernetes.io/pod-deletion-cost` at the worker's active job count.

When a Deployment scales down, the ReplicaSet controller removes the pods with the lowest deletion
cost first: with the cost at the number of calls a pod carries, idle pods go before busy ones and
fewer calls have to drain. Switched on by POD_DELETION_COST (the Helm chart sets it together with
a Role that may only get and patch pods, and the downward API's POD_NAME / POD_NAMESPACE).

The worker's main process sends a JSON merge-patch of the pod's annotations to the Kubernetes API
with the pod's service account token, each time its job count changes (coalesced: one request in
flight, the newest count wins) and re-checked every RESYNC_SECONDS. A failing API never stops the
worker: the first failure in a row is logged at WARNING, the others at DEBUG, all are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

logger = logging.getLogger("voice_agents.pod_cost")

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESYNC_SECONDS = 30.0
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class PodRef:
    """Where the pod is in the API and how to reach the API from inside it."""

    api_url: str  # https://host:port
    namespace: str
    name: str
    token_file: Path
    ca_file: Path | None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    @classmethod
    def in_cluster(cls, environ: dict[str, str] | None = None) -> PodRef:
        """From the pod's environment (downward API) and its service account files; raises
        RuntimeError naming what is missing."""
        env = dict(os.environ if environ is None else environ)
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        name = env.get("POD_NAME", "").strip()
        namespace = env.get("POD_NAMESPACE", "").strip()
        if not namespace and (SERVICE_ACCOUNT / "namespace").is_file():
            namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
        missing = [what for what, ok in (
            ("KUBERNETES_SERVICE_HOST/PORT (not in a pod?)", host and port),
            ("POD_NAME (downward API)", name), ("POD_NAMESPACE (downward API)", namespace),
            (f"{SERVICE_ACCOUNT}/token (automountServiceAccountToken)",
             (SERVICE_ACCOUNT / "token").is_file())) if not ok]
        if missing:
            raise RuntimeError("missing " + ", ".join(missing))
        bracketed = f"[{host}]" if host and ":" in host else host
        return cls(f"https://{bracketed}:{port}", namespace, name, SERVICE_ACCOUNT / "token",
                   SERVICE_ACCOUNT / "ca.crt")


class PodDeletionCost:
    """Writes `count()` into the pod's deletion-cost annotation when it changes."""

    def __init__(self, pod: PodRef, count: Callable[[], int], *,
                 resync_seconds: float = RESYNC_SECONDS) -> None:
        self._pod = pod
        self._count = count
        self._resync = resync_seconds
        self._written: int | None = None  # the value the API last accepted
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._failing = False
        self.errors = 0  # failed PATCHes since start
        self.patches = 0  # accepted PATCHes since start

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pod-deletion-cost")

    def changed(self, *_: Any) -> None:
        """A job started or ended (an event handler: any arguments are ignored)."""
        self._wake.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        ssl_ctx: ssl.SSLContext | bool = False if self._pod.api_url.startswith("http:") else \
            ssl.create_default_context(cafile=str(self._pod.ca_file) if self._pod.ca_file else None)
        # the session lives as long as the task: the event loop's shutdown cancels the task (the
        # framework has no worker-stopped event), and that closes the session
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_ctx),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
        ) as self._http:
            while True:
                self._wake.clear()
                cost = self._count()
                if cost != self._written:
                    await self._patch(cost)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._resync)

    async def _patch(self, cost: int) -> None:
        assert self._http is not None
        body = {"metadata": {"annotations": {ANNOTATION: str(cost)}}}
        try:
            # read each time: the kubelet rotates projected tokens
            token = self._pod.token_file.read_text().strip()
            async with self._http.patch(
                self._pod.api_url + self._pod.path, data=json.dumps(body),
                headers={"Authorization": f"Bearer {token}",
                         "Content-Type": "application/merge-patch+json"},
            ) as resp:
                if resp.status >= 300:
                    detail = (await resp.text())[:200]
                    raise RuntimeError(f"HTTP {resp.status}: {detail}")
        except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError) as e:
            self.errors += 1
            level = logging.DEBUG if self._failing else logging.WARNING
            logger.log(level, "could not set the pod's deletion cost (scale-down may pick a "
                       "busy pod first): %s", e or type(e).__name__,
                       extra={"errors": self.errors})
            self._failing = True
            return
        if self._failing:
            logger.info("pod deletion cost set again", extra={"errors": self.errors})
        self._failing = False
        self._written = cost
        self.patches += 1
