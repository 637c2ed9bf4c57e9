"""The incident library: scenarios replayed through promtool on the prod rules (scenarios.py says
what happens and what must page, replay.py turns a scenario into stored series and reads back when
each alert fired, table.py writes docs/incidents.md)."""
