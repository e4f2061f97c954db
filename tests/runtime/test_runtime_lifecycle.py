"""The one service shape's pieces: supervised tasks, the exit code, sub-tools by name."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime import lifecycle


async def test_a_stop_ends_every_task_with_exit_0() -> None:
    stop = asyncio.Event()
    ended = []

    async def consumer(name: str) -> None:
        await stop.wait()
        ended.append(name)

    tasks = [asyncio.create_task(consumer("a")), asyncio.create_task(consumer("b"))]
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert await lifecycle.until_stopped(stop, tasks) == 0
    assert sorted(ended) == ["a", "b"]


async def test_a_crashed_task_stops_the_others_and_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()

    async def crashes() -> None:
        raise RuntimeError("handler bug")

    async def waits() -> None:
        await stop.wait()

    assert await lifecycle.until_stopped(stop, [asyncio.create_task(crashes()), asyncio.create_task(waits())]) == 1
    assert stop.is_set() and "task failed" in caplog.text


def test_run_turns_the_end_into_an_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    async def returns(code):
        return code

    async def unreachable() -> int:
        raise ConnectionError("cannot connect to NATS at nats://127.0.0.1:9")

    assert lifecycle.run("track", returns(None)) == 0 and lifecycle.run("track", returns(2)) == 2
    assert lifecycle.run("track", unreachable()) == 1
    assert "roadwatch track: cannot connect to NATS" in capsys.readouterr().err


def test_tools_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    tools = {"check": lambda argv: 0 if argv == ["f.yaml"] else 3}
    assert lifecycle.tool("ingest", ["check", "f.yaml"], tools) == 0
    assert lifecycle.tool("ingest", ["frobnicate"], tools) == 2
    assert "unknown tool 'frobnicate' (expected: check, or no argument" in capsys.readouterr().err
    assert lifecycle.tool("notify", ["x"], {}) == 2
    assert "the service takes no argument" in capsys.readouterr().err


def test_main_runs_a_tool_or_else_the_service(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from services.track.settings import Settings

    monkeypatch.setattr(lifecycle.logs, "setup", lambda service, level: None)  # keep pytest's log handlers
    started = []

    async def service() -> int:
        return 3

    def start(config: Settings):
        started.append(config)
        return service()

    assert lifecycle.main("track", Settings, ["check", "f"], start, tools={"check": lambda argv: len(argv) + 4}) == 5
    assert lifecycle.main("detect", Settings, ["a.jpg", "b.jpg"], start, tools=lambda argv: len(argv)) == 2
    assert lifecycle.main("track", Settings, ["x"], start) == 2
    assert "the service takes no argument" in capsys.readouterr().err
    assert started == []
    monkeypatch.setenv("HTTP_PORT", "0")
    assert lifecycle.main("track", Settings, [], start) == 3 and isinstance(started[0], Settings)
    monkeypatch.setenv("HTTP_PORT", "abc")
    with pytest.raises(SystemExit) as exit_:
        lifecycle.main("track", Settings, [], start)
    assert exit_.value.code == 2 and "invalid setting HTTP_PORT" in capsys.readouterr().err and len(started) == 1
