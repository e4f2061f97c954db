"""A real RTSP server for the ingest tests: Debian's GStreamer RTSP server serving H.264 clips.

Run with Debian's own Python (it needs the GObject bindings, not the project venv):

    /usr/bin/python3 tests/ingest/rtsp_server.py --port 8554 --mount haiphong=/path/clip.mp4

Each client gets its own pipeline (the factory is not shared), so every connection plays the
clip from the start, paced at its real frame rate, without re-encoding. The server prints
"READY <port>" on stdout once it listens, so that the test knows when to connect.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def pipeline_for(path: str) -> str:
    demux = "qtdemux" if path.lower().endswith((".mp4", ".mov", ".m4v")) else "matroskademux"
    return (f'( filesrc location="{path}" ! {demux} ! h264parse config-interval=-1 '
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", default=[], help="NAME=PATH of an H.264 MP4")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, _, path = spec.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(pipeline_for(path))
        factory.set_shared(False)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
