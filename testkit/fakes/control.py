"""`Control`: a sync client for a fake's `/_control` endpoint, from another process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class Control:
    """Sync client for a fake's `/_control` endpoint (e.g. one run by `python -m testkit.fakes`).

    `Control(url)("fault", endpoint="chat", mode="status", status=429, retry_after=1)`;
    `Control(url).state()` returns the fake's counters and recorded requests.
    """

    def __init__(self, control_url: str, timeout: float = 5.0) -> None:
        self.url = control_url
        self.timeout = timeout

    def __call__(self, op: str, **body: Any) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url,
            data=json.dumps({"op": op, **body}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise ValueError(f"control op {op!r} refused: {e.read().decode()}") from None

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
            return json.loads(resp.read())
