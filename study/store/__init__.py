"""What a study keeps on disk: atomic writes and run records (records), claims between concurrent commands (claims)."""
