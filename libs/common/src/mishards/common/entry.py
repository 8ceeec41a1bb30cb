"""The console-script entry point shared by the three services."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol

from mishards.common.logs import setup_logging
from mishards.common.settings import Settings, SettingsError, load_settings
from mishards.common.tracing import setup_tracing_or_exit


class RunnableService(Protocol):
    def run(self) -> Awaitable[None]: ...


def load_settings_or_exit(name: str) -> Settings:
    """`load_settings()` for a console script: a bad setting exits 2 with one line naming it."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"mishards-{name}: {exc}", file=sys.stderr)
        sys.exit(2)


def run_service(
    name: str,
    build: Callable[[Settings], RunnableService],
    *,
    settings: Settings | None = None,
    log_name: str | None = None,
) -> None:
    """Load settings (unless given), set up logs and tracing, build the service in the loop and serve it.

    A bad setting or a service that cannot be built exits 2 with one line naming the cause.
    `log_name` names the log file when it is not the service's (a router worker's own file).
    """
    resolved = load_settings_or_exit(name) if settings is None else settings
    setup_logging(resolved, log_name or name)
    setup_tracing_or_exit(resolved, name)

    async def serve_it() -> None:
        try:
            service = build(resolved)  # inside the loop: grpc.aio servers need one
        except Exception as exc:
            # One line on stderr (the log's stream too, so it is not logged as well).
            print(f"mishards-{name}: cannot start: {' '.join(str(exc).split())}", file=sys.stderr)
            sys.exit(2)
        await service.run()

    asyncio.run(serve_it())
