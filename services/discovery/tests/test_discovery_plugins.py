"""Back-end resolution: built-ins by name, user classes by path + class name."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from mishards.common.plugins import PluginError
from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends import (
    FileBackend,
    MemoryBackend,
    StaticBackend,
    builtin_registry,
    create_backend,
    resolve_backend,
)

USER_PLUGIN = textwrap.dedent(
    """
    from mishards.discovery.backends.base import DiscoveryBackend, InstanceSpec

    class ConsulLike(DiscoveryBackend):
        def __init__(self, settings):
            super().__init__(settings)
            self.port = settings.DISCOVERY_STATIC_PORT

        async def list_instances(self):
            return [InstanceSpec("svc-1", f"10.1.1.1:{self.port}", "readonly")]

    class NotABackend:
        pass

    class Broken(DiscoveryBackend):
        def __init__(self, settings):
            raise RuntimeError("cannot reach the catalog")

        async def list_instances(self):
            return []
    """
)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("static", StaticBackend),
        ("file", FileBackend),
        ("memory", MemoryBackend),
        ("Static", StaticBackend),
    ],
)
def test_builtins(name: str, cls: type) -> None:
    assert resolve_backend(Settings(DISCOVERY_CLASS_NAME=name)) is cls


def test_default_is_static() -> None:
    assert isinstance(create_backend(Settings(WOSERVER=["a:1"])), StaticBackend)


def test_duplicate_registration_is_fatal() -> None:
    registry = builtin_registry()
    with pytest.raises(PluginError, match="registered twice"):
        registry.register("static", MemoryBackend)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(PluginError) as info:
        resolve_backend(Settings(DISCOVERY_CLASS_NAME="zookeeper"))
    assert "zookeeper" in str(info.value)
    assert "known: consul, file, kubernetes, memory, static" in str(info.value)


def test_user_class_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "my_discovery.py").write_text(USER_PLUGIN)
    settings = Settings(
        DISCOVERY_CLASS_NAME="ConsulLike",
        DISCOVERY_PLUGIN_PATH=str(tmp_path),
        DISCOVERY_STATIC_PORT=19777,
    )
    backend = create_backend(settings)
    assert type(backend).__name__ == "ConsulLike"
    listed = asyncio.run(backend.list_instances())
    assert [(s.identity, s.address, s.role) for s in listed] == [("svc-1", "10.1.1.1:19777", "readonly")]


def test_user_class_errors(tmp_path: Path) -> None:
    (tmp_path / "my_discovery.py").write_text(USER_PLUGIN)
    folder = str(tmp_path)
    with pytest.raises(PluginError, match=r"'Missing' in .*known: consul, file, kubernetes, memory, static"):
        resolve_backend(Settings(DISCOVERY_CLASS_NAME="Missing", DISCOVERY_PLUGIN_PATH=folder))
    with pytest.raises(PluginError, match="no `async def list_instances"):
        resolve_backend(Settings(DISCOVERY_CLASS_NAME="NotABackend", DISCOVERY_PLUGIN_PATH=folder))
    with pytest.raises(PluginError, match="failed to start: cannot reach the catalog"):
        create_backend(Settings(DISCOVERY_CLASS_NAME="Broken", DISCOVERY_PLUGIN_PATH=folder))


def test_builtin_settings_errors_pass_through() -> None:
    with pytest.raises(SettingsError, match="DISCOVERY_FILE_PATH"):
        create_backend(Settings(DISCOVERY_CLASS_NAME="file"))
