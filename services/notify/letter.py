"""The notice as a PDF letter (fpdf2), laid out like an administrative document.

The font comes from the system (FONT_PATH, DejaVu from Debian's fonts-dejavu-core by default)
and is embedded as a subset, so the Vietnamese diacritics print and extract correctly on any
reader. A letter is rendered once and stored with its SHA-256: every retry sends exactly the
bytes that were first rendered, and the hash in notice.sent proves which document went out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from PIL import Image
from fpdf.enums import XPos, YPos

from services.notify.config import IssuingUnit, LetterTemplate
from services.notify.decisions import render

FAMILY = "body"
MARGIN_MM = 20
LABEL_MM = 48
LINE_MM = 6.0


@dataclass(frozen=True)
class Fonts:
    regular: Path
    bold: Path

    def prepare(self, directory: Path) -> Fonts:
        """Cut the fonts down to the Latin and Vietnamese ranges, once at start. fpdf2 parses and
        subsets the whole font for every document; DejaVu has ~6,000 glyphs, of which a letter
        uses a few hundred, and this cut makes a letter ~1.5x faster to render. A character
        outside these ranges (it should not occur in Vietnamese names and addresses) would print
        as a missing glyph, so the ranges are generous."""
        directory.mkdir(parents=True, exist_ok=True)
        return Fonts(regular=_cut(self.regular, directory), bold=_cut(self.bold, directory))


# Basic Latin, Latin-1, Latin Extended-A/B (Ơ ơ Ư ư), combining accents, Latin Extended Additional
# (the precomposed Vietnamese letters), dashes, quotes, bullets, ellipsis, per mille, đồng sign.
VIETNAMESE_LATIN = ((0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x1E00, 0x1EFF), (0x2010, 0x2027),
                    (0x2030, 0x203A), (0x20AB, 0x20AC), (0x2116, 0x2116), (0x2122, 0x2122))


def _cut(path: Path, directory: Path) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # it reports every table at INFO
    font = TTFont(str(path), recalcTimestamp=False)  # same input, same bytes: letters stay reproducible
    options = subset.Options()
    options.layout_features = []  # fpdf2 does not shape text unless told to
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.drop_tables += ["FFTM"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[code for low, high in VIETNAMESE_LATIN for code in range(low, high + 1)])
    subsetter.subset(font)
    target = directory / f"{path.stem}-vi.ttf"
    font.save(str(target))
    return target


class _Letter(FPDF):
    footer_template = ""
    footer_values: dict[str, str] = {}

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FAMILY, size=8)
        values = {**self.footer_values, "page": str(self.page_no()), "pages": "{nb}"}  # {nb}: fpdf2's page count
        self.cell(0, 5, render(self.footer_template, values), align="C")


@dataclass(frozen=True)
class Job:
    """One letter to render, picklable so that a worker process can render it."""

    template: LetterTemplate
    values: dict[str, str]
    unit: IssuingUnit
    issued_at: datetime
    images: tuple[bytes, ...]
    fonts: Fonts


def worker_init() -> None:
    """In a render worker process: die with the service. Without this a worker of a notify that
    was killed (SIGKILL, OOM) would wait for work forever as an orphan."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker exits when its queue breaks, if ever
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def render_job(job: Job) -> bytes:
    return render_letter(job.template, job.values, job.unit, issued_at=job.issued_at, images=job.images,
                         fonts=job.fonts)


def render_letter(template: LetterTemplate, values: dict[str, str], unit: IssuingUnit, *, issued_at: datetime,
                  images: Sequence[bytes] = (), fonts: Fonts) -> bytes:
    """A4 letter: unit and motto header, title, addressee, case table, request, evidence images."""
    pdf = _Letter(format="A4", unit="mm")
    pdf.set_creation_date(issued_at)  # the document's bytes depend only on the case, not on when they were made
    pdf.set_producer("roadwatch notify")
    pdf.set_title(render(template.title[0], values))
    pdf.set_subject(values.get("case_id", ""))
    pdf.footer_template, pdf.footer_values = template.footer, values
    pdf.set_margins(MARGIN_MM, 15, MARGIN_MM)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_font(FAMILY, "", str(fonts.regular))
    pdf.add_font(FAMILY, "B", str(fonts.bold))
    pdf.add_page()
    width = pdf.w - 2 * MARGIN_MM

    # Header: the unit on the left, the national motto and the date on the right.
    top = pdf.get_y()
    left_w, right_w = width * 0.42, width * 0.58
    pdf.set_font(FAMILY, size=10)
    pdf.multi_cell(left_w, 5, unit.parent.upper(), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, "B", 10)
    pdf.multi_cell(left_w, 5, unit.name.upper(), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, size=10)
    pdf.multi_cell(left_w, 5, render(template.number, values), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    left_bottom = pdf.get_y()
    pdf.set_xy(MARGIN_MM + left_w, top)
    for index, line in enumerate(template.motto):
        pdf.set_font(FAMILY, "B", 10 if index == 0 else 11)
        pdf.set_x(MARGIN_MM + left_w)
        pdf.multi_cell(right_w, 5, line, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, size=10)
    pdf.set_x(MARGIN_MM + left_w)
    pdf.multi_cell(right_w, 6, render(template.dateline, values), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(pdf.get_y(), left_bottom) + 6)

    pdf.set_font(FAMILY, "B", 13)
    for index, line in enumerate(template.title):
        if index == 1:
            pdf.set_font(FAMILY, "B", 11)
        pdf.multi_cell(width, 6, render(line, values), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    pdf.set_font(FAMILY, size=11)
    for line in template.addressee:
        pdf.multi_cell(width, LINE_MM, render(line, values), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.multi_cell(width, LINE_MM, render(template.intro, values), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)

    for label, value in template.rows:
        text = render(value, values)
        if not text.strip():
            continue
        y = pdf.get_y()
        pdf.set_font(FAMILY, "B", 10.5)
        pdf.multi_cell(LABEL_MM, LINE_MM, f"{label}:", new_x=XPos.RIGHT, new_y=YPos.TOP)
        label_bottom = pdf.get_y()
        pdf.set_font(FAMILY, size=10.5)
        pdf.set_xy(MARGIN_MM + LABEL_MM, y)
        pdf.multi_cell(width - LABEL_MM, LINE_MM, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if pdf.get_y() < label_bottom:
            pdf.set_y(label_bottom)
    pdf.ln(3)

    pdf.set_font(FAMILY, size=11)
    pdf.multi_cell(width, LINE_MM, render(template.request, values), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if template.bring:
        pdf.ln(1)
        pdf.set_font(FAMILY, "B", 11)
        pdf.multi_cell(width, LINE_MM, render(template.bring_title, values), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FAMILY, size=11)
        for item in template.bring:
            pdf.set_x(MARGIN_MM + 5)
            pdf.multi_cell(width - 5, LINE_MM, f"- {render(item, values)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if template.closing:
        pdf.ln(1)
        pdf.multi_cell(width, LINE_MM, render(template.closing, values), align="L", new_x=XPos.LMARGIN,
                       new_y=YPos.NEXT)  # a long URL would stretch a justified line

    if unit.signer:
        pdf.ln(4)
        pdf.set_font(FAMILY, "B", 11)
        pdf.set_x(MARGIN_MM + width / 2)
        pdf.multi_cell(width / 2, LINE_MM, unit.signer, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if template.signature_note:
            pdf.set_font(FAMILY, size=9)
            pdf.set_x(MARGIN_MM + width / 2)
            pdf.multi_cell(width / 2, 5, render(template.signature_note, values), align="C",
                           new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if images:
        _evidence(pdf, template, values, images, width)
    return bytes(pdf.output())


def _evidence(pdf: FPDF, template: LetterTemplate, values: dict[str, str], images: Sequence[bytes],
              width: float) -> None:
    """Evidence frames two to a row, each at its own aspect ratio, starting where they fit."""
    pdf.ln(5)
    image_w = (width - 6) / 2
    if pdf.get_y() + 8 + image_w * 0.75 > pdf.h - 20:
        pdf.add_page()
    pdf.set_font(FAMILY, "B", 11)
    pdf.multi_cell(width, LINE_MM, render(template.evidence_title, values) or " ", new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT)
    pdf.ln(1)
    for start in range(0, len(images), 2):
        row = images[start:start + 2]
        sizes = [Image.open(io.BytesIO(data)).size for data in row]
        height = max(image_w * h / w for w, h in sizes)
        if pdf.get_y() + height > pdf.h - 20:
            pdf.add_page()
        y = pdf.get_y()
        for column, data in enumerate(row):
            pdf.image(io.BytesIO(data), x=MARGIN_MM + column * (image_w + 6), y=y, w=image_w)
        pdf.set_y(y + height + 4)
