import logging

import pytest

from mishards.common.settings import SettingsError, describe_settings, load_settings


def test_defaults_follow_the_design_brief() -> None:
    s = load_settings({}, dotenv_path=None)
    assert s.SERVER_PORT == 19530
    assert s.META_SERVER_PORT == 19541 and s.META_ADDRESS == "127.0.0.1:19541"
    assert s.DISCOVERY_SERVER_PORT == 19542 and s.DISCOVERY_ADDRESS == "127.0.0.1:19542"
    assert s.DEFAULT_SHARDS_NUM == 2 and s.READ_REPLICAS == "1" and s.read_replicas(3) == 1
    assert s.DISCOVERY_CLASS_NAME == "static" and s.DISCOVERY_STATIC_PORT == 19530
    assert s.DISCOVERY_HEALTHY_AFTER == 2  # a join is damped by default


def test_values_are_typed() -> None:
    s = load_settings({"WOSERVER": "tcp://a:1, b", "DEBUG": "true", "MAX_RETRY": "5", "LOG_LEVEL": "debug"}, None)
    assert s.WOSERVER == ["tcp://a:1", "b"]
    assert s.DEBUG is True and s.MAX_RETRY == 5 and s.LOG_LEVEL == "DEBUG"


@pytest.mark.parametrize(
    "name,value",
    [
        ("SERVER_PORT", "abc"),
        ("SERVER_PORT", "70000"),
        ("DEBUG", "maybe"),
        ("DEFAULT_SHARDS_NUM", "0"),
        ("DISCOVERY_HEALTHY_AFTER", "0"),
        ("TRACING_SAMPLER_TYPE", "sometimes"),
        ("LOG_LEVEL", "LOUD"),
        ("READ_REPLICAS", "17"),
        ("READ_REPLICAS", "some"),
        ("REBALANCE", "sometimes"),
    ],
)
def test_bad_value_names_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: value}, None)
    assert name in str(err.value)


def test_read_replicas_all_means_one_on_every_read_only_instance() -> None:
    s = load_settings({"READ_REPLICAS": "all"}, None)
    assert [s.read_replicas(n) for n in (0, 1, 3)] == [0, 1, 3]
    assert [load_settings({"READ_REPLICAS": "2"}, None).read_replicas(n) for n in (1, 3)] == [1, 2]


def test_settings_file_and_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text("DEFAULT_SHARDS_NUM: 4\nREAD_REPLICAS: 2\n")
    s = load_settings({"MISHARDS_SETTINGS_FILE": str(f), "READ_REPLICAS": "3"}, None)
    assert s.DEFAULT_SHARDS_NUM == 4 and s.READ_REPLICAS == "3"


def test_every_setting_is_documented_in_readme_and_env_example() -> None:
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[3]
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    for name, _, _ in describe_settings():
        assert f"`{name}`" in readme, f"{name} missing from the README table"
        assert f"{name}=" in example, f"{name} missing from .env.example"


def test_secret_is_not_printed() -> None:
    s = load_settings({"MILVUS_BACKEND_TOKEN": "root:Milvus"}, None)
    assert "root:Milvus" not in repr(s)


def test_settings_of_the_original_that_are_no_longer_read_are_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="mishards.settings"):
        s = load_settings({"ROUTER_CLASS_TEST_NAME": "X", "SQL_TEST_ECHO": "true", "LOG_LEVEL": "INFO"}, None)
    assert s.LOG_LEVEL == "INFO"
    assert not hasattr(s, "ROUTER_CLASS_TEST_NAME") and not hasattr(s, "SQL_TEST_ECHO")
    messages = [r.getMessage() for r in caplog.records]
    assert any("ROUTER_CLASS_TEST_NAME is no longer read" in m and "ROUTER_CLASS_NAME" in m for m in messages)
    assert any("SQL_TEST_ECHO is no longer read" in m and "SQL_ECHO" in m for m in messages)
