"""`python -m services <agent> <command> [args...]`: the agents' one CLI (see common/cli.py)."""

import sys

from services.common.cli import main

if __name__ == "__main__":  # job processes re-import this module; only the CLI runs main
    main(sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2:])
