"""dinotrack's service layer: Ray actors, jobs, the CLI."""
