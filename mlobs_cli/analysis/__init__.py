"""Pure functions on frames: percentiles, timelines, spikes, checks. Nothing here reads files or prints."""
