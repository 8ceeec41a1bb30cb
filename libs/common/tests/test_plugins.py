import pytest

from mishards.common.plugins import PluginError, Registry


class A:
    pass


def test_registry_resolves_builtins_and_rejects_duplicates() -> None:
    reg: Registry[object] = Registry("discovery")
    reg.register("a", A)
    assert reg.resolve("a") is A
    with pytest.raises(PluginError):
        reg.register("a", A)


def test_unknown_name_lists_known(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg: Registry[object] = Registry("router")
    reg.register("ConsistentHashRouter", A)
    with pytest.raises(PluginError) as err:
        reg.resolve("Nope")
    assert "ConsistentHashRouter" in str(err.value) and "Nope" in str(err.value)


def test_user_class_from_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "my_plugin.py").write_text("class MyRouter:\n    kind = 'user'\n")
    reg: Registry[object] = Registry("router")
    cls = reg.resolve("MyRouter", str(tmp_path))
    assert cls.kind == "user"  # type: ignore[attr-defined]


def test_broken_plugin_says_which_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    reg: Registry[object] = Registry("tracer")
    with pytest.raises(PluginError) as err:
        reg.resolve("X", str(tmp_path))
    assert "broken.py" in str(err.value)


def test_plugin_path_must_exist() -> None:
    reg: Registry[object] = Registry("tracer")
    with pytest.raises(PluginError):
        reg.resolve("X", "/no/such/folder")
