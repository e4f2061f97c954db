"""Settings come from the environment; a bad value names its variable and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import msgspec
import pytest

from services.runtime.settings import (SettingError, above, between, check_bounds, check_common, describe, help_text,
                                       load, parse)


class Example(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    http_port: int = 8080
    log_level: str = "INFO"
    database_url: str
    cameras: tuple[str, ...] = ()
    max_frame_age_s: float = 2.0
    motion_gate: bool = False

    def __post_init__(self) -> None:
        check_common(nats_url=self.nats_url, http_port=self.http_port, log_level=self.log_level)


def test_values_are_converted() -> None:
    settings = parse(Example, {"DATABASE_URL": "postgresql://x/y", "CAMERAS": "cam-1, cam-2", "MAX_FRAME_AGE_S": "0.5",
                                "MOTION_GATE": "true", "HTTP_PORT": "9000"})
    assert settings.cameras == ("cam-1", "cam-2") and settings.max_frame_age_s == 0.5
    assert settings.motion_gate is True and settings.http_port == 9000


@pytest.mark.parametrize(
    ("environ", "variable", "reason"),
    [
        ({}, "DATABASE_URL", "required"),
        ({"DATABASE_URL": "x", "HTTP_PORT": "eighty"}, "HTTP_PORT", "Expected `int`"),
        ({"DATABASE_URL": "x", "HTTP_PORT": "70000"}, "HTTP_PORT", "not a TCP port"),
        ({"DATABASE_URL": "x", "NATS_URL": "http://nats:4222"}, "NATS_URL", "scheme nats"),
        ({"DATABASE_URL": "x", "LOG_LEVEL": "chatty"}, "LOG_LEVEL", "not one of"),
        ({"DATABASE_URL": "x", "MOTION_GATE": "maybe"}, "MOTION_GATE", "Expected `bool`"),
    ],
)
def test_bad_values_name_the_variable(environ: dict, variable: str, reason: str) -> None:
    with pytest.raises(SettingError) as caught:
        parse(Example, environ)
    assert caught.value.variable == variable and reason in caught.value.reason


def test_load_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        load(Example, {"DATABASE_URL": "x", "HTTP_PORT": "-1"}, service="example")
    assert caught.value.code == 2
    assert "roadwatch example: invalid setting HTTP_PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("service", "environ", "variable"),
    [
        ("track", {"HTTP_PORT": "abc"}, "HTTP_PORT"),
        ("portal", {}, "DATABASE_URL"),
        ("notify", {"DATABASE_URL": "mysql://x", "NATS_URL": "nats://127.0.0.1:1"}, "DATABASE_URL"),
    ],
)
def test_a_service_with_a_bad_setting_exits_2_naming_it(service: str, environ: dict, variable: str) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "HTTP_PORT", "NATS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", service], env={**env, **environ}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert f"invalid setting {variable}" in result.stderr


def test_make_run_settings_are_validated_by_name(tmp_path) -> None:
    from services import firstrun, localstack

    with pytest.raises(SettingError) as caught:
        firstrun.run_env({"NATS_PORT": "four"}, tmp_path)
    assert caught.value.variable == "NATS_PORT"
    with pytest.raises(SettingError) as caught:
        firstrun.run_env({"ROADWATCH_BIND": "my laptop"}, tmp_path)
    assert caught.value.variable == "ROADWATCH_BIND" and "'my laptop' is not an IP address" in caught.value.reason
    env = firstrun.run_env({"NATS_PORT": "4999", "PORTAL_PORT": "9080", "EMBEDDED_PG_PORT": "55000"}, tmp_path)
    assert env["NATS_PORT"] == "4999" and env["PORTAL_PORT"] == "9080" and env["DATABASE_URL"].endswith(":55000/roadwatch")
    assert parse(localstack.LocalSettings, {"EMBEDDED_PG": env["EMBEDDED_PG"]}).embedded_pg is True
    assert parse(localstack.LocalSettings, {"ROADWATCH_PG_FAST": "1"}).roadwatch_pg_fast is True


class Bounded(msgspec.Struct, frozen=True, kw_only=True):
    pool_size: Annotated[int, between(1, 200)] = 8  # connections
    max_age_s: Annotated[float, above(0)] | None = None  # unset: no limit

    def __post_init__(self) -> None:
        check_bounds(self)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"POOL_SIZE": "0"}, "POOL_SIZE: 0 is not between 1 and 200"),
        ({"POOL_SIZE": "201"}, "POOL_SIZE: 201 is not between 1 and 200"),
        ({"MAX_AGE_S": "-1"}, "MAX_AGE_S: must be above 0, got -1"),
        ({"MAX_AGE_S": "0"}, "MAX_AGE_S: must be above 0, got 0"),
    ],
)
def test_a_value_outside_its_bounds_gets_one_message(environ: dict, message: str) -> None:
    with pytest.raises(SettingError) as caught:
        parse(Bounded, environ)
    assert str(caught.value) == message
    field, value = next(iter(environ.items()))
    with pytest.raises(SettingError) as caught:  # the same when the settings are built in code
        Bounded(**{field.lower(): float(value) if field == "MAX_AGE_S" else int(value)})
    assert str(caught.value) == message


def test_both_ends_of_a_range_are_accepted_and_a_non_number_is_a_type_error() -> None:
    assert parse(Bounded, {"POOL_SIZE": "1"}).pool_size == 1
    assert parse(Bounded, {"POOL_SIZE": "200"}).pool_size == 200
    assert parse(Bounded, {"MAX_AGE_S": "0.001"}).max_age_s == 0.001
    assert parse(Bounded, {}) == Bounded(pool_size=8, max_age_s=None)
    with pytest.raises(SettingError) as caught:
        parse(Bounded, {"POOL_SIZE": "many"})
    assert caught.value.variable == "POOL_SIZE" and "Expected `int`" in caught.value.reason


def test_help_and_the_readme_show_the_bounds() -> None:
    (_, _, pool), (_, _, age) = describe(Bounded)
    assert (pool, age) == ("connections (1–200)", "unset: no limit (above 0)")
    assert "connections (1–200)" in help_text(Bounded)
