"""JPEG encoding of decoded video frames, as cheaply as the machine allows.

JPEG stores full-range YCbCr 4:2:0, which is exactly what most H.264 cameras decode to
(yuvj420p). TurboJPEG can compress those planes as they are, skipping the conversion to BGR
and back that an OpenCV encode implies: about 1.2 ms instead of 1.7-2.0 ms for a 1006x720
frame here, paid for every published frame. libturbojpeg is a system library (Debian package
libturbojpeg0) loaded with ctypes; without it, frames go through swscale and OpenCV.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

import av
import cv2
import numpy as np

log = logging.getLogger("roadwatch.ingest.jpeg")

TJSAMP_420 = 2
AVCOL_RANGE_JPEG = 2  # full range, whatever the pixel format's name says
# Limited-range ("TV") levels to full range: lets a yuv420p frame use the same fast path.
_LUMA_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_CHROMA_TO_FULL = np.clip(np.round((np.arange(256) - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)


class TurboJpeg:
    """tjCompressFromYUVPlanes through ctypes; one compressor handle per thread (they are not
    thread-safe, and every camera encodes in its own thread)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.lib = library
        library.tjInitCompress.restype = ctypes.c_void_p
        library.tjCompressFromYUVPlanes.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.POINTER(ctypes.c_int),
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
            ctypes.c_int, ctypes.c_int]
        library.tjCompressFromYUVPlanes.restype = ctypes.c_int
        library.tjFree.argtypes = [ctypes.c_void_p]
        library.tjGetErrorStr.restype = ctypes.c_char_p
        self._local = threading.local()

    def _handle(self) -> int:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self.lib.tjInitCompress()
            if not handle:
                raise RuntimeError("tjInitCompress failed")
            self._local.handle = handle
        return handle

    def encode_planes(self, planes: list[np.ndarray], strides: list[int], width: int, height: int,
                      quality: int) -> bytes:
        pointers = (ctypes.c_void_p * 3)(*[plane.ctypes.data for plane in planes])
        stride_array = (ctypes.c_int * 3)(*strides)
        buffer = ctypes.c_void_p()
        size = ctypes.c_ulong(0)
        status = self.lib.tjCompressFromYUVPlanes(self._handle(), pointers, width, stride_array, height, TJSAMP_420,
                                                  ctypes.byref(buffer), ctypes.byref(size), quality, 0)
        try:
            if status != 0:
                raise RuntimeError(f"TurboJPEG: {self.lib.tjGetErrorStr().decode(errors='replace')}")
            return ctypes.string_at(buffer, size.value)
        finally:
            if buffer.value:
                self.lib.tjFree(buffer)


def load_turbojpeg() -> TurboJpeg | None:
    for name in ("libturbojpeg.so.0", ctypes.util.find_library("turbojpeg")):
        if not name:
            continue
        try:
            return TurboJpeg(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None


class FrameEncoder:
    """Encodes PyAV frames; `turbo=None` forces the OpenCV path (and is what happens without
    libturbojpeg)."""

    def __init__(self, turbo: TurboJpeg | None) -> None:
        self.turbo = turbo

    @property
    def name(self) -> str:
        return "turbojpeg" if self.turbo is not None else "opencv"

    def encode(self, frame: av.VideoFrame, quality: int, planes: np.ndarray | None = None) -> bytes:
        """`planes`: the frame's I420 planes as one array, when the caller already has them."""
        name = frame.format.name
        if self.turbo is not None and name in ("yuvj420p", "yuv420p") and frame.width % 2 == 0 \
                and frame.height % 2 == 0:
            width, height = frame.width, frame.height
            full_range = name == "yuvj420p" or frame.color_range == AVCOL_RANGE_JPEG
            if planes is None and full_range:
                # The decoder's own buffers, padded rows and all: no copy at all.
                views = [np.frombuffer(plane, np.uint8) for plane in frame.planes]
                return self.turbo.encode_planes(views, [plane.line_size for plane in frame.planes], width, height,
                                                quality)
            if planes is None:
                planes = frame.to_ndarray()
            if not full_range:
                full = np.empty_like(planes)
                cv2.LUT(planes[:height], _LUMA_TO_FULL, dst=full[:height])
                cv2.LUT(planes[height:], _CHROMA_TO_FULL, dst=full[height:])
                planes = full
            flat = planes.reshape(-1)
            luma_size, chroma_size = width * height, (width // 2) * (height // 2)
            parts = [flat[:luma_size], flat[luma_size:luma_size + chroma_size], flat[luma_size + chroma_size:]]
            return self.turbo.encode_planes(parts, [width, width // 2, width // 2], width, height, quality)
        ok, buffer = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buffer.tobytes()


ENCODERS = ("auto", "turbojpeg", "opencv")
_default: FrameEncoder | None = None


def configure(choice: str = "auto") -> FrameEncoder:
    """Pick the encoder once at start (JPEG_ENCODER): auto uses TurboJPEG when it is installed."""
    global _default
    if choice not in ENCODERS:
        raise ValueError(f"unknown JPEG encoder {choice!r}")
    turbo = load_turbojpeg() if choice != "opencv" else None
    if choice == "turbojpeg" and turbo is None:
        raise RuntimeError("JPEG_ENCODER=turbojpeg but libturbojpeg is not installed (apt-get install libturbojpeg0)")
    _default = FrameEncoder(turbo)
    log.info("JPEG encoder", extra={"fields": {"encoder": _default.name}})
    return _default


def default_encoder() -> FrameEncoder:
    return _default if _default is not None else configure()
