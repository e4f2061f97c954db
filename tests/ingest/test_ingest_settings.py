"""Ingest settings from the environment: defaults, and a bad value names its variable."""

from __future__ import annotations

import pytest

from services.ingest.settings import Settings
from services.runtime.settings import SettingError, parse


def test_defaults_need_only_the_cameras_file() -> None:
    config = parse(Settings, {"CAMERAS_FILE": "/etc/roadwatch/cameras.yaml"})
    assert (config.lease_ttl_s, config.lease_scan_s, config.queue_size, config.jpeg_encoder) == (6.0, 1.0, 4, "auto")
    assert config.replica.endswith(f"-{__import__('os').getpid()}")
    assert parse(Settings, {"CAMERAS_FILE": "x", "REPLICA_ID": "ingest-0"}).replica == "ingest-0"


@pytest.mark.parametrize(
    ("environ", "variable", "words"),
    [
        ({}, "CAMERAS_FILE", "is required"),
        ({"CAMERAS_FILE": "x", "LEASE_SCAN_S": "6"}, "LEASE_SCAN_S", "below LEASE_TTL_S"),
        ({"CAMERAS_FILE": "x", "QUEUE_SIZE": "0"}, "QUEUE_SIZE", "at least 1"),
        ({"CAMERAS_FILE": "x", "QUEUE_SIZE": "many"}, "QUEUE_SIZE", "'many'"),
        ({"CAMERAS_FILE": "x", "JPEG_ENCODER": "gif"}, "JPEG_ENCODER", "not one of auto, turbojpeg, opencv"),
        ({"CAMERAS_FILE": "x", "REPLICA_ID": "a.b"}, "REPLICA_ID", "may only hold"),
        ({"CAMERAS_FILE": "x", "LEASE_TTL_S": "0.5"}, "LEASE_TTL_S", "at least 1"),
    ],
)
def test_bad_values_name_the_variable(environ, variable, words) -> None:
    with pytest.raises(SettingError) as caught:
        parse(Settings, environ)
    assert caught.value.variable == variable and words in caught.value.reason
