"""File back end: formats, change detection, bad files keep the last known list."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends import BackendUnavailable, FileBackend, InstanceSpec
from mishards.discovery.backends.file import parse_instance_file
from mishards.discovery.prober import Prober, ProbeResult


async def healthy(address: str) -> ProbeResult:
    return ProbeResult(True)


def write(path: Path, text: str, age: float = 60.0) -> None:
    """Write `text`, dated `age` seconds back (so the stamp is trusted), atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    stamp = path.stat().st_mtime - age
    os.utime(path, (stamp, stamp))


def test_parse_forms() -> None:
    text = """
- {host: 127.0.0.1, port: 19601, role: writable}
- {address: "milvus-ro-0:19700", role: readonly, identity: ro-0}
- {host: milvus-ro-1, role: Read-Only}
- {address: "tcp://[::1]", role: readonly}
"""
    assert parse_instance_file(text, 19530) == [
        InstanceSpec("127.0.0.1:19601", "127.0.0.1:19601", "writable"),
        InstanceSpec("ro-0", "milvus-ro-0:19700", "readonly"),
        InstanceSpec("milvus-ro-1:19530", "milvus-ro-1:19530", "readonly"),
        InstanceSpec("[::1]:19530", "[::1]:19530", "readonly"),
    ]
    assert parse_instance_file("[]", 19530) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("- {host: [unclosed", "not valid YAML"),
        ("{host: a}", "expected a YAML list"),
        ("- a:1", "expected a mapping"),
        ("- {host: a}", "role is missing"),
        ("- {host: a, role: primary}", "not writable or readonly"),
        ("- {role: writable}", "host or address is missing"),
        ("- {host: a, port: x, role: writable}", "not a number"),
        ("- {address: 'a:1', host: a, role: writable}", "either address or host"),
        ("- {host: a, role: writable, weight: 2}", "unknown keys weight"),
        (
            "- {host: a, role: writable}\n- {address: 'a:19530', role: readonly}",
            "twice",
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        parse_instance_file(text, 19530)


def test_needs_a_path() -> None:
    with pytest.raises(SettingsError, match="DISCOVERY_FILE_PATH"):
        FileBackend(Settings())


def test_rereads_only_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    write(path, "- {host: 127.0.0.1, port: 19601, role: writable}\n")
    backend = FileBackend(Settings(DISCOVERY_FILE_PATH=str(path)))

    async def run() -> None:
        first = await backend.list_instances()
        assert await backend.list_instances() == first
        assert backend.reads == 1
        # Same size, same identity: only the role differs.
        write(path, "- {host: 127.0.0.1, port: 19601, role: readonly}\n", age=30)
        assert [s.role for s in await backend.list_instances()] == ["readonly"]
        assert backend.reads == 2

    asyncio.run(run())


def test_a_fresh_file_is_read_until_its_stamp_ages(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    write(path, "[]\n", age=0)
    backend = FileBackend(Settings(DISCOVERY_FILE_PATH=str(path)))

    async def run() -> None:
        await backend.list_instances()
        path.write_text("- {host: a, role: readonly}\n")  # same second, in place
        assert [s.identity for s in await backend.list_instances()] == ["a:19530"]

    asyncio.run(run())


def test_bad_or_missing_file_keeps_the_last_list(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    write(path, "- {host: 127.0.0.1, port: 19601, role: writable}\n")
    backend = FileBackend(Settings(DISCOVERY_FILE_PATH=str(path)))
    prober = Prober(backend, probe=healthy, interval=3600)

    async def run() -> None:
        good = await prober.run_round()
        assert good.backend_ok and [i.identity for i in good.instances] == ["127.0.0.1:19601"]

        write(path, "- {host: [unclosed\n", age=20)
        with pytest.raises(BackendUnavailable, match="not valid YAML"):
            await backend.list_instances()
        bad = await prober.run_round()
        assert not bad.backend_ok
        assert "not valid YAML" in bad.backend_error and str(path) in bad.backend_error
        assert list(bad.instances) == list(good.instances)
        assert bad.version == good.version + 1

        path.unlink()
        missing = await prober.run_round()
        assert not missing.backend_ok and "cannot read" in missing.backend_error
        assert list(missing.instances) == list(good.instances)

        write(path, "- {host: 127.0.0.1, port: 19602, role: readonly}\n", age=10)
        fixed = await prober.run_round()
        assert fixed.backend_ok and fixed.backend_error == ""
        assert [i.identity for i in fixed.instances] == ["127.0.0.1:19602"]

    asyncio.run(run())


def test_starting_without_a_file_reports_the_backend_down(tmp_path: Path) -> None:
    backend = FileBackend(Settings(DISCOVERY_FILE_PATH=str(tmp_path / "absent.yaml")))
    membership = asyncio.run(Prober(backend, probe=healthy).run_round())
    assert membership.version == 1
    assert not membership.backend_ok and "absent.yaml" in membership.backend_error
    assert list(membership.instances) == []


def test_host_names_are_resolved_at_every_list_and_identities_stay_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "instances.yaml"
    write(
        path,
        "- {host: milvus-wo, port: 19601, role: writable}\n"
        "- {address: 'milvus-ro:19602', role: readonly, identity: ro-0}\n"
        "- {host: 10.1.1.1, port: 19603, role: readonly}\n"
        "- {host: gone.invalid, port: 19604, role: readonly}\n",
    )
    backend = FileBackend(Settings(DISCOVERY_FILE_PATH=str(path)))
    answers = {"milvus-wo": iter(["10.0.0.1", "10.0.0.9"]), "milvus-ro": iter(["10.0.0.2", "10.0.0.2"])}

    async def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple]:
        if host == "gone.invalid":
            raise OSError("Name or service not known")
        address = next(answers[host]) if host in answers else host
        return [(2, 1, 6, "", (address, port))]

    async def run() -> list[list[InstanceSpec]]:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
        return [await backend.list_instances(), await backend.list_instances()]

    first, second = asyncio.run(run())
    assert backend.reads == 1, "the file itself did not change"
    assert first == [
        InstanceSpec("milvus-wo:19601", "10.0.0.1:19601", "writable"),
        InstanceSpec("ro-0", "10.0.0.2:19602", "readonly"),
        InstanceSpec("10.1.1.1:19603", "10.1.1.1:19603", "readonly"),
        InstanceSpec("gone.invalid:19604", "gone.invalid:19604", "readonly"),  # unresolved: probed DOWN
    ]
    assert second[0] == InstanceSpec("milvus-wo:19601", "10.0.0.9:19601", "writable")  # the name moved
    assert second[1:] == first[1:]
