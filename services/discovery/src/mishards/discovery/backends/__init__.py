"""Discovery back ends and their registry.

Built-ins register by name in `builtin_registry()`; a user class is named by
DISCOVERY_PLUGIN_PATH + DISCOVERY_CLASS_NAME, as in the original Mishards.
"""

from __future__ import annotations

import inspect

from mishards.common.plugins import PluginError, Registry
from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
    Role,
)
from mishards.discovery.backends.file import FileBackend
from mishards.discovery.backends.memory import MemoryBackend
from mishards.discovery.backends.static import StaticBackend

__all__ = [
    "BackendUnavailable",
    "DiscoveryBackend",
    "FileBackend",
    "InstanceSpec",
    "MemoryBackend",
    "Role",
    "StaticBackend",
    "builtin_registry",
    "create_backend",
    "resolve_backend",
]


def builtin_registry() -> Registry[DiscoveryBackend]:
    """A fresh registry holding the built-in back ends (static, file, memory, consul, kubernetes)."""
    # Imported here: the Kubernetes client takes half a second to import, and only
    # the discovery process needs it.
    from mishards.discovery.backends.consul import ConsulBackend
    from mishards.discovery.backends.kubernetes import KubernetesBackend

    registry: Registry[DiscoveryBackend] = Registry("discovery")
    registry.register("static", StaticBackend)
    registry.register("file", FileBackend)
    registry.register("memory", MemoryBackend)
    registry.register("consul", ConsulBackend)
    registry.register("kubernetes", KubernetesBackend)
    return registry


def resolve_backend(settings: Settings, registry: Registry[DiscoveryBackend] | None = None) -> type[DiscoveryBackend]:
    """The back-end class named by DISCOVERY_CLASS_NAME (and DISCOVERY_PLUGIN_PATH).

    Built-in names match case-insensitively. Raises PluginError listing the known
    back ends when nothing matches, or when the user class lacks `list_instances`.
    """
    registry = registry or builtin_registry()
    name = settings.DISCOVERY_CLASS_NAME.strip()
    if not name:
        raise PluginError(f"setting DISCOVERY_CLASS_NAME is empty; known: {', '.join(registry.names())}")
    if name not in registry.names() and name.lower() in registry.names():
        name = name.lower()
    cls = registry.resolve(name, settings.DISCOVERY_PLUGIN_PATH)
    method = getattr(cls, "list_instances", None)
    if method is None or not inspect.iscoroutinefunction(method):
        raise PluginError(f"discovery plugin {name!r} has no `async def list_instances(self)`")
    return cls


def create_backend(settings: Settings, registry: Registry[DiscoveryBackend] | None = None) -> DiscoveryBackend:
    """An instance of the configured back end, built as `Backend(settings)`.

    Raises PluginError (unknown or broken plugin) or SettingsError (bad setting).
    """
    cls = resolve_backend(settings, registry)
    try:
        return cls(settings)
    except (SettingsError, PluginError):
        raise
    except Exception as exc:
        # A user plugin's constructor must not crash the process with a traceback.
        raise PluginError(f"discovery plugin {settings.DISCOVERY_CLASS_NAME!r} failed to start: {exc}") from exc
