"""The one logging setup of every service: LOG_LEVEL, LOG_PATH/LOG_NAME, rotation."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from mishards.common.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def setup_logging(settings: Settings, service: str) -> None:
    """Log to stderr and to LOG_PATH/LOG_NAME-<service>.log (rotated at 50 MB, 5 kept)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(settings.LOG_LEVEL)
    formatter = logging.Formatter(FORMAT)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    root.addHandler(stream)
    if settings.LOG_PATH:
        os.makedirs(settings.LOG_PATH, exist_ok=True)
        path = os.path.join(settings.LOG_PATH, f"{settings.LOG_NAME}-{service}.log")
        rotating = logging.handlers.RotatingFileHandler(path, maxBytes=50 << 20, backupCount=5)
        rotating.setFormatter(formatter)
        root.addHandler(rotating)
    # grpc and sqlalchemy are chatty at DEBUG; keep them at INFO unless SQL_ECHO asks.
    logging.getLogger("sqlalchemy").setLevel(logging.INFO if settings.SQL_ECHO else logging.WARNING)
