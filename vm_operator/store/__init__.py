"""What the operator keeps on disk: run logs and last_run records."""
