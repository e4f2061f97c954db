"""The cameras file: what a good file gives, and that every mistake names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ingest import cameras
from services.ingest.cameras import CamerasError

EXAMPLE = Path(__file__).resolve().parents[2] / "services" / "ingest" / "cameras.example.yaml"

GOOD = """\
cameras:
  - id: hp-lach-tray-01
    name: "Ngã tư Lạch Tray – Văn Cao"
    url: rtsp://admin:secret@10.0.0.5:554/Streaming/Channels/101
    fps: 5
    jpeg_quality: 85
    scene: scenes/hp-lach-tray-01.yaml
    location:
      latitude: 20.8449
      longitude: 106.6881
      address: "Lạch Tray, Ngô Quyền, Hải Phòng"
      commune_code: "11311"
    motion: {enabled: true, keepalive_s: 3}
  - id: sg-mjpeg
    name: MJPEG
    url: http://10.0.0.6/video.mjpg
    scene: s.yaml
    location: {latitude: 10.77, longitude: 106.70}
  - id: clip
    name: Clip
    url: clips/a.mp4
    scene: s.yaml
    realtime: false
    location: {latitude: 10.77, longitude: 106.70}
  - id: snaps
    name: Snapshots
    url: snaps/
    image_fps: 2
    scene: s.yaml
    location: {latitude: 10.77, longitude: 106.70}
"""


def test_good_file_gives_cameras_with_defaults_and_kinds(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(GOOD, encoding="utf-8")
    rtsp, mjpeg, clip, snaps = cameras.load(path)
    assert rtsp.id == "hp-lach-tray-01" and rtsp.kind == "rtsp"
    assert rtsp.name == "Ngã tư Lạch Tray – Văn Cao"
    assert rtsp.fps == 5.0 and rtsp.jpeg_quality == 85
    assert rtsp.location.commune_code == "11311" and rtsp.location.latitude == pytest.approx(20.8449)
    assert rtsp.motion.enabled and rtsp.motion.keepalive_s == 3.0
    assert "secret" not in rtsp.safe_url and rtsp.safe_url.startswith("rtsp://***@10.0.0.5:554/")
    assert mjpeg.kind == "mjpeg" and mjpeg.fps == 5.0 and mjpeg.jpeg_quality == 80 and not mjpeg.motion.enabled
    # Relative paths are relative to the cameras file, so a file can travel with its clips.
    assert clip.kind == "file" and clip.url == str(tmp_path / "clips" / "a.mp4") and clip.realtime is False
    assert snaps.kind == "folder" and snaps.url == str(tmp_path / "snaps") + "/" and snaps.image_fps == 2.0


def test_example_file_is_valid() -> None:
    loaded = cameras.load(EXAMPLE)
    assert {camera.kind for camera in loaded} == {"rtsp", "mjpeg", "file", "folder"}


def problem(text: str, tmp_path: Path) -> CamerasError:
    path = tmp_path / "cams.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CamerasError) as caught:
        cameras.load(path)
    return caught.value


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "field", "line", "words"),
    [
        (replace("fps: 5\n", "fps: 0\n"), "cameras[0].fps", 5, "expected float > 0.0, got 0"),
        (replace("fps: 5\n", "fps: fast\n"), "cameras[0].fps", 5, "expected float, got str"),
        (replace("jpeg_quality: 85", "jpeg_quality: 101"), "cameras[0].jpeg_quality", 6, "<= 100, got 101"),
        (replace("jpeg_quality: 85", "jpeg_qualty: 85"), "cameras[0].jpeg_qualty", 6, "unknown field"),
        (replace("latitude: 20.8449", "latitude: 120.8449"), "cameras[0].location.latitude", 9, "<= 90.0"),
        (replace('commune_code: "11311"', "commune_code: 11311"), "cameras[0].location.commune_code", 12,
         "quoted"),
        (replace("url: http://10.0.0.6/video.mjpg", "url: ftp://10.0.0.6/x"), "cameras[1].url", 16, "scheme"),
        (replace("id: sg-mjpeg", "id: SG.Mjpeg"), "cameras[1].id", 14, "lowercase"),
        (replace("id: clip", "id: hp-lach-tray-01"), "cameras[2].id", 19, "duplicate id (first defined at line 2)"),
        (replace("    scene: s.yaml\n    realtime", "    realtime"), "cameras[2]", 19, "required field scene is missing"),
        (replace("image_fps: 2", "image_fps: -1"), "cameras[3].image_fps", 28, "> 0"),
        (replace("motion: {enabled: true, keepalive_s: 3}", "motion: {enabled: yes, keepalive_s: 0}"),
         "cameras[0].motion.keepalive_s", 13, "> 0"),
        (replace("    name: MJPEG\n", "    name: ' '\n"), "cameras[1].name", 15, "expected a non-empty text"),
    ],
)
def test_bad_field_names_file_line_and_field(tmp_path, text, field, line, words) -> None:
    error = problem(text, tmp_path)
    assert (error.field, error.line) == (field, line), str(error)
    assert words in error.reason, error.reason
    assert str(error).startswith(f"{tmp_path / 'cams.yaml'}:{line}: {field}: ")


def test_broken_yaml_and_wrong_shape_name_the_file_and_line(tmp_path: Path) -> None:
    error = problem("cameras:\n  - id: a\n    name: [unclosed\n", tmp_path)
    assert error.line is not None and error.line >= 3 and "not valid YAML" in error.reason
    error = problem("cameras: {id: a}\n", tmp_path)
    assert error.field == "cameras" and error.line == 1
    error = problem("camera:\n  - id: a\n", tmp_path)
    assert (error.field, error.line, error.reason) == ("camera", 1, "unknown field")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CamerasError, match="file not found") as caught:
        cameras.load(tmp_path / "nope.yaml")
    assert caught.value.path == str(tmp_path / "nope.yaml")


def test_empty_list_is_allowed_so_that_cameras_can_all_be_removed(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras: []\n", encoding="utf-8")
    assert cameras.load(path) == []


def test_check_command_lists_a_good_file_and_rejects_a_bad_one(tmp_path: Path, capsys) -> None:
    from services.ingest.main import main

    path = tmp_path / "cameras.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hp-lach-tray-01\trtsp\t5 fps\tq85 motion(keepalive 3 s)\trtsp://***@10.0.0.5:554/" in out
    assert out.rstrip().endswith(f"{path}: 4 cameras, valid") and "secret" not in out
    path.write_text(GOOD.replace("fps: 5\n", "fps: 0\n"), encoding="utf-8")
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"invalid cameras file: {path}:5: cameras[0].fps: ")


def test_a_clip_may_carry_its_recording_start(tmp_path: Path) -> None:
    base = GOOD.split("  - id: sg-mjpeg")[0].replace("cameras:\n", "cameras:\n", 1)
    clip = ("  - id: clip\n    name: Clip\n    url: clips/a.mp4\n    scene: s.yaml\n"
            "    start_at: 2026-11-28T07:00:00+07:00\n    location: {latitude: 10.77, longitude: 106.70}\n")
    path = tmp_path / "cameras.yaml"
    path.write_text(base + clip, encoding="utf-8")
    assert cameras.load(path)[1].start_at == 1795824000.0  # 2026-11-28T00:00:00Z
    path.write_text(base + clip.replace("+07:00", ""), encoding="utf-8")
    with pytest.raises(CamerasError, match="start_at.*UTC offset"):
        cameras.load(path)
    path.write_text(GOOD.replace("    motion: {enabled: true, keepalive_s: 3}\n",
                                 "    motion: {enabled: true, keepalive_s: 3}\n    start_at: 2026-11-28T07:00:00+07:00\n"),
                    encoding="utf-8")
    with pytest.raises(CamerasError, match="start_at.*only applies to a video file"):
        cameras.load(path)
