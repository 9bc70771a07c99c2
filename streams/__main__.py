"""`python -m streams` runs the `merchant-monitor` command line."""

from streams.cli import main

main()
