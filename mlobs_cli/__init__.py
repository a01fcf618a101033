"""mlobs: latency percentiles, timelines and CI checks from the JSON logs of model-serving services."""

__version__ = "0.1.0"
