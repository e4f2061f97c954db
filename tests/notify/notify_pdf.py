"""Reading a notice PDF back (pypdf), for assertions on what a reader would see."""

from __future__ import annotations

import io
import unicodedata

import pypdf


def text_of(pdf: bytes) -> str:
    """All pages' text, NFC-normalised with whitespace collapsed, so that a value wrapped over two
    lines or justified with wide spaces still reads as the one string the template produced."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(unicodedata.normalize("NFC", text).split())


def flat(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split())


def images_of(pdf: bytes) -> list[bytes]:
    """The image streams as stored (a JPEG embedded without re-encoding is the file itself)."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    found = []
    for page in reader.pages:
        xobjects = page.get("/Resources", {}).get("/XObject", {})
        for ref in xobjects.values():
            image = ref.get_object()
            if image.get("/Subtype") == "/Image":
                found.append(image._data)
    return found
