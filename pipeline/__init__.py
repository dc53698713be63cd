"""dinotrack's library: sources, models, tracking and outputs, as plain Python (no Ray)."""

__version__ = "0.1.0"
