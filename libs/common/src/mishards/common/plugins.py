"""Plugin registries: built-ins register by name once; user classes by path + class name."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Generic, TypeVar

T = TypeVar("T")


class PluginError(ValueError):
    """A plugin cannot be found or loaded; the message lists what is known."""


class Registry(Generic[T]):
    """Named classes of one plugin kind (discovery back ends, read routers, tracers)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str, cls: type[T]) -> type[T]:
        """Register `cls` under `name`; a second registration of the same name is an error."""
        if name in self._classes:
            raise PluginError(f"{self.kind} plugin {name!r} is registered twice")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def resolve(self, class_name: str, plugin_path: str = "") -> type[T]:
        """The class named `class_name`: a built-in, else a class in a module under `plugin_path`.

        Raises PluginError naming the known plugins when nothing matches.
        """
        if class_name in self._classes:
            return self._classes[class_name]
        if plugin_path:
            found = load_class_from_path(plugin_path, class_name)
            if found is not None:
                return found  # type: ignore[return-value]
        known = ", ".join(self.names())
        where = f" in {plugin_path}" if plugin_path else ""
        raise PluginError(f"unknown {self.kind} plugin {class_name!r}{where}; known: {known}")


def load_class_from_path(plugin_path: str, class_name: str) -> type | None:
    """Import each `*.py` module (or package) directly under `plugin_path` and return the class.

    The modules are imported under a private name, without editing sys.path for good.
    """
    if not os.path.isdir(plugin_path):
        raise PluginError(f"plugin path {plugin_path!r} is not a folder")
    for entry in sorted(os.listdir(plugin_path)):
        full = os.path.join(plugin_path, entry)
        if entry.endswith(".py"):
            module_name, file_path = entry[:-3], full
        elif os.path.isfile(os.path.join(full, "__init__.py")):
            module_name, file_path = entry, os.path.join(full, "__init__.py")
        else:
            continue
        qualified = f"mishards_plugin_{abs(hash(plugin_path))}_{module_name}"
        module = sys.modules.get(qualified)
        if module is None:
            spec = importlib.util.spec_from_file_location(qualified, file_path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # a broken plugin must say which file broke
                raise PluginError(f"plugin module {file_path} failed to import: {exc}") from exc
            sys.modules[qualified] = module
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            return cls
    return None
