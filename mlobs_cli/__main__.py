"""`python -m mlobs_cli` runs the same entry point as the `mlobs` command."""

from mlobs_cli.entry import main

if __name__ == "__main__":
    main()
