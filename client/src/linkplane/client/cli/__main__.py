"""`python -m linkplane.client.cli`: the same entry point as the `lpctl` script."""

from linkplane.client.cli import main

if __name__ == "__main__":
    main()
