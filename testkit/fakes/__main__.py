"""Run the provider fakes in their own process for end-to-end tests.

    python -m testkit.fakes --openai-port 0 --deepgram-port 0 --script-file script.json

Prints one JSON line once both listen (with `--only openai` or `--only deepgram`, one fake and
its two keys: the e2e harness runs each in a process of its own, so the STT fake's recogniser
never delays an LLM request):
    {"openai_base_url": "http://127.0.0.1:P/v1", "openai_control": "http://127.0.0.1:P/_control",
     "deepgram_base_url": "ws://127.0.0.1:Q/v1/listen", "deepgram_control": "...", "pid": N}
and runs until SIGTERM/SIGINT, or until stdin closes when stdin is a pipe (so a test harness
that dies takes the fakes with it). Steer it with `testkit.fakes.Control(<control url>)`.

The script file is either a list (what the user may say: the Deepgram fake's vocabulary) or
    {"deepgram": {"know": [...], "config": {...}},
     "openai": {"replies": [...], "transcripts": [...], "config": {...}}}
An utterance is an
`Utterance.script()` dict, or a plain list of sentences, synthesised here with
`testkit.speech.synthesize` defaults (the test playing the same sentences with the same
defaults gets the same audio, from the same cache).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from .deepgram_server import FakeDeepgram
from .faults import apply_config
from .openai_server import FakeOpenAI


def _utterance(item: Any) -> Any:
    if isinstance(item, list) and all(isinstance(s, str) for s in item):
        from testkit import speech

        return speech.synthesize(item)
    return item


def _load_script(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    data = json.loads(Path(path).read_text())
    return {"deepgram": {"know": data}} if isinstance(data, list) else data


def _stdin_is_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    # /dev/null or a terminal would end (or never end) at once: only watch pipes and sockets
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def _main(args: argparse.Namespace) -> int:
    spec = _load_script(args.script_file)
    dg_spec, oai_spec = spec.get("deepgram", {}), spec.get("openai", {})

    fakes: list[Any] = []
    info: dict[str, Any] = {}
    if args.only in (None, "openai"):
        oai = FakeOpenAI(host=args.host, port=args.openai_port)
        oai.config.tts_audio = args.tts_audio
        apply_config(oai.config, oai_spec.get("config", {}))
        oai.replies.extend(oai_spec.get("replies", []))
        oai.transcripts.extend(oai_spec.get("transcripts", []))
        fakes.append(oai)
    if args.only in (None, "deepgram"):
        dg = FakeDeepgram(host=args.host, port=args.deepgram_port)
        apply_config(dg.config, dg_spec.get("config", {}))
        dg.know([_utterance(u) for u in dg_spec.get("know", [])])
        fakes.append(dg)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_stdin(stop)) if _stdin_is_pipe() else None

    async with contextlib.AsyncExitStack() as stack:
        for fake in fakes:
            await stack.enter_async_context(fake)
            kind = "openai" if isinstance(fake, FakeOpenAI) else "deepgram"
            info[f"{kind}_base_url"] = fake.base_url
            info[f"{kind}_control"] = fake.control_url
        print(json.dumps({**info, "pid": os.getpid()}), flush=True)
        await stop.wait()
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return 0


async def _watch_stdin(stop: asyncio.Event) -> None:
    # asyncio pipe reader, not a thread: a thread blocked in read() aborts interpreter shutdown
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testkit.fakes", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--openai-port", type=int, default=0)
    p.add_argument("--deepgram-port", type=int, default=0)
    p.add_argument("--script-file", help="JSON script (see module docstring)")
    p.add_argument("--only", choices=("openai", "deepgram"), help="run one of the two fakes")
    p.add_argument("--tts-audio", choices=("tone", "espeak"), default="tone")
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
