"""`python -m services.web`: the web service (see server.py). Exit 2 on a bad setting."""

import logging
import os
import sys

from aiohttp import web

from services.common.config import ConfigError, load_dotenv_file

from . import settings as web_settings
from .server import make_app


def main() -> None:
    load_dotenv_file()
    try:
        settings = web_settings.load(dict(os.environ))
    except ConfigError as e:
        print(f"web: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(make_app(settings), host=settings.web_bind_address, port=settings.web_port,
                print=lambda *_: logging.getLogger("voice_agents.web").info(
                    "serving on %s:%d, offering agents %s", settings.web_bind_address,
                    settings.web_port, ", ".join(settings.agents)),
                access_log=None)


if __name__ == "__main__":
    main()
