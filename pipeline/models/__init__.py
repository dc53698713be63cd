"""Models: backbones that give patch features, segmenters that turn prompts into masks."""
