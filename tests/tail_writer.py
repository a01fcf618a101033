"""A model-serving process for the `mlobs tail` tests: logs requests at a steady rate.

It logs with stdlib logging + python-json-logger through `logging.handlers.RotatingFileHandler`, so
rotation by rename is done by the real library; midway it also copy-truncates its file the way
logrotate's `copytruncate` does (after a short pause: lines written but not yet read when a file is
truncated are lost by copytruncate itself, for every follower).

    python tests/tail_writer.py PATH COUNT RATE_PER_S [TRUNCATE_AT]
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import shutil
import sys
import time


def main() -> None:
    path, count, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    truncate_at = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # python-json-logger < 3
        from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

    handler = logging.handlers.RotatingFileHandler(path, maxBytes=40_000, backupCount=5)
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(message)s", timestamp=True)
    handler.setFormatter(formatter)
    logger = logging.getLogger("predict")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    start = time.monotonic()
    for i in range(count):
        if i == truncate_at:
            time.sleep(0.3)
            shutil.copy(path, path + ".copytruncate")
            os.truncate(path, 0)
        logger.info(
            "prediction",
            extra={
                "request_id": f"req-{i}",
                "model_version": "v1" if i % 3 else "v2",
                "latency_ms": 10.0 + (i * 7) % 190,
                "status": 500 if i % 25 == 0 else 200,
            },
        )
        delay = start + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    handler.close()


if __name__ == "__main__":
    main()
