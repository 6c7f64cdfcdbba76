"""Running a study at scale: launcher glue, work grouping (shards), progress (`python -m launch.status`)."""
