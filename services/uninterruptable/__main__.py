from services.common.cli import main

if __name__ == "__main__":  # job processes re-import this module; only the CLI runs main
    main("uninterruptable", "services.uninterruptable.agent:entrypoint")
