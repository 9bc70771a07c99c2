"""Everything with I/O: the Faust app, agents, warehouse sinks, broker launcher and the CLI."""
