"""`python -m testkit.first_call SERVICE [--no-prewarm]`: the modules a job process imports
during its first call, as a JSON list on stdout.

Run in a fresh interpreter that starts like a job process: the modules the worker's forkserver
preloads, the service's agent module, then the prewarm (unless --no-prewarm). The call is an
in-process session (testkit/inproc.py): the session and its providers are built, the agent
speaks first if it does, the user says one sentence and the agent answers it. Whatever is imported
in that window was imported on the job's event loop while a caller waited.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

# what the forkserver imports before forking a job process (the registered plugins, the
# framework's warm-up), then the job's entrypoint module
import livekit.agents.ipc._preload  # noqa: F401
from livekit.plugins import deepgram, openai, silero  # noqa: F401

from services import registry


class _Proc:
    userdata: dict[str, Any]

    def __init__(self) -> None:
        self.userdata = {}


async def _call(service: str, vad: Any) -> list[str]:
    from testkit.inproc import SessionFactory
    from testkit.speech import synthesize

    utt = synthesize(["What is the weather like today?"])
    async with SessionFactory(vad) as start:
        before = set(sys.modules)
        h = await start(service, script=[utt], replies=["It is sunny."])
        await h.wait_quiet(1.0)
        await h.speak(utt)
        await h.wait_for(lambda: bool(h.chat_messages("assistant")), timeout=30)
        await h.wait_quiet(1.0)
        return sorted(set(sys.modules) - before)


def main() -> None:
    service = sys.argv[1]
    registry.module(service)
    from services.common import config, worker

    proc = _Proc()
    if "--no-prewarm" in sys.argv:
        proc.userdata["vad"] = silero.VAD.load()
    else:
        # only the shape of the settings matters here: the call builds its own providers
        # against the fakes
        settings = config.load(service, {
            "LIVEKIT_URL": "ws://127.0.0.1:1", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s",
            "OPENAI_API_KEY": "sk-fake", "DEEPGRAM_API_KEY": "dg-fake",
        })
        worker.prewarm(proc, settings)  # type: ignore[arg-type]
    print(json.dumps(asyncio.run(_call(service, proc.userdata["vad"]))))


if __name__ == "__main__":
    main()
