"""The web service: serves the page (web/, built with esbuild) and hands a browser what it needs
to talk to one agent: `GET /api/connection-details?agent=NAME` answers
`{serverUrl, roomName, participantName, participantToken}` (LiveKit's starter convention) for a
fresh room with random names. The token carries the dispatch (a RoomAgentDispatch in its room
configuration): livekit-server creates the room and dispatches the agent when the browser joins,
so this server never calls LiveKit, and the API secret never leaves it. The agents offered
(`GET /api/agents`) are those of WEB_AGENTS, by the names their workers register under: the page
knows an agent by that name only (what it shows comes from the agent's participant attributes).

Anyone who can reach this endpoint can join rooms with our agents: publish it on localhost, or
behind an authenticating proxy (see helm/voice-agents/README.md).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from aiohttp import web
from livekit import api

from .settings import Settings

logger = logging.getLogger("voice_agents.web")
NO_STORE = {"Cache-Control": "no-store"}


def connection_details(settings: Settings, agent: str) -> dict[str, str]:
    room = f"web-{agent}-{secrets.token_hex(6)}"
    identity = f"web-user-{secrets.token_hex(4)}"
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name("You")
        .with_ttl(timedelta(seconds=settings.web_token_ttl_seconds))
        .with_grants(api.VideoGrants(room_join=True, room=room, can_publish=True,
                                     can_subscribe=True, can_publish_data=True))
        .with_room_config(api.RoomConfiguration(
            agents=[api.RoomAgentDispatch(agent_name=agent)]))
        .to_jwt()
    )
    return {"serverUrl": settings.livekit_public_url or "", "roomName": room,
            "participantName": identity, "participantToken": token}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=NO_STORE)


def make_app(settings: Settings) -> web.Application:
    static = settings.page_dir
    offered = settings.agents

    async def details(request: web.Request) -> web.Response:
        agent = request.query.get("agent", "")
        if not agent:
            return _error(400, f"missing ?agent=: one of {', '.join(offered)}")
        if agent not in offered:
            return _error(400, f"unknown agent: one of {', '.join(offered)}")
        body = connection_details(settings, agent)
        logger.info("token issued", extra={"agent": agent, "room": body["roomName"]})
        return web.json_response(body, headers=NO_STORE)

    async def agents(_request: web.Request) -> web.Response:
        return web.json_response({"agents": list(offered)})

    async def health(_request: web.Request) -> web.Response:
        ok = (static / "index.html").is_file()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "page not built")

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "index.html")

    app = web.Application()
    app.router.add_get("/api/connection-details", details)
    app.router.add_get("/api/agents", agents)
    app.router.add_get("/healthz", health)
    app.router.add_get("/", index)
    app.router.add_static("/", static, show_index=False)
    return app
