"""Stage 9, the CLI: each module turns flags into one call and prints its result."""
