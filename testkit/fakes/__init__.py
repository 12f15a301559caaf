"""Hermetic stand-ins for the cloud providers, reached by the real plugins through `base_url`.

- `FakeOpenAI` (openai_server.py): `/v1/models`, `/v1/chat/completions`, `/v1/audio/speech`,
  `/v1/audio/transcriptions`; openai_protocol.py holds the wire formats (replies, errors, audio).
- `FakeDeepgram` (deepgram_server.py): the `/v1/listen` WebSocket with interim/final `Results`
  for the speech it actually receives: recogniser.py recognises known sentences in the audio,
  deepgram_protocol.py turns the words into Deepgram's messages.
- `python -m testkit.fakes` runs both in their own process for end-to-end tests.

What both share: server.py, the server lifecycle (an async context manager in the caller's loop,
or `start()`/`stop()` on a private thread), the counters and config knobs, and the `/_control`
endpoint through which another process steers a fake; faults.py, fault plans; control.py,
`Control`, a small sync client for that endpoint. The recogniser (recogniser.py, matching.py,
vocabulary.py, heard_check.py) is pure: it turns PCM into words without a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .control import Control
from .faults import Fault, FaultPlan, apply_config
from .server import FakeServer

if TYPE_CHECKING:
    from .deepgram_server import FakeDeepgram
    from .openai_server import FakeOpenAI

__all__ = [
    "Control", "FakeDeepgram", "FakeOpenAI", "FakeServer", "Fault", "FaultPlan", "apply_config",
]


def __getattr__(name: str) -> Any:
    # lazy: importing the package for Fault/Control does not pull in both servers
    if name == "FakeOpenAI":
        from .openai_server import FakeOpenAI

        return FakeOpenAI
    if name == "FakeDeepgram":
        from .deepgram_server import FakeDeepgram

        return FakeDeepgram
    raise AttributeError(name)
