"""Reading and resuming a study from outside: progress (`python -m launch.status`) and rerun commands."""
