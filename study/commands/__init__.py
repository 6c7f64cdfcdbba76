"""The command layer: what `python -m study.sample` / `study.train` run, above training, data and spaces.

Command-line parsing (cli, settings) and grouping the work for a cluster (shards, sweep conveniences)
live here; launch/ only reads a study (status) and rebuilds commands (rerun), on top of this package.
"""
