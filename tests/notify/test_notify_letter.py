"""The PDF letter, parsed back: every field a reader needs, diacritics included, and the images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from notify_pdf import flat, images_of, text_of
from notify_samples import FONTS, REVIEWED_AT, case, example, owner, vehicle
from services.notify import decisions, letter

FRAMES = ("street/vn_cam_g30_Image3154.jpg", "street/vn_cam_video1_78.jpg")


@pytest.fixture(scope="module")
def fonts(tmp_path_factory):
    """The fonts as the service prepares them (cut to the Vietnamese Latin ranges)."""
    return FONTS.prepare(tmp_path_factory.mktemp("fonts"))


def test_owner_letter_has_every_field_and_the_evidence(shared_dir: Path, fonts):
    config = example()
    reviewed = case()
    values = decisions.fields(reviewed, vehicle(), owner(), config, notice_at=REVIEWED_AT,
                              respond_by_at=decisions.respond_by(REVIEWED_AT, config))
    images = [(shared_dir / "data" / name).read_bytes() for name in FRAMES]
    pdf = letter.render_letter(config.templates.owner_letter, values, config.unit(reviewed.agency),
                               issued_at=REVIEWED_AT, images=images, fonts=fonts)
    text = text_of(pdf)
    for expected in (
        "CÔNG AN THÀNH PHỐ HẢI PHÒNG", "PHÒNG CẢNH SÁT GIAO THÔNG", "Số: CASE-2026-000123",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Hải Phòng, ngày 21 tháng 11 năm 2026", "THÔNG BÁO",
        "Kính gửi: Trần Thị Huệ", "Địa chỉ: Số 18 ngõ 45 Lạch Tray, phường Ngô Quyền, Hải Phòng",
        "Camera giám sát giao thông số 01, nút giao Lạch Tray – Văn Cao",  # the recording device
        "Biển kiểm soát: 15A-123.45", "Màu biển: Nền màu trắng, chữ và số màu đen",
        "Loại phương tiện: Xe ô tô con", "Thời gian vi phạm: 07 giờ 45 phút, ngày 20/11/2026",
        "Địa điểm vi phạm: Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng",
        "Hành vi vi phạm: Không chấp hành hiệu lệnh của đèn tín hiệu giao thông",
        "Căn cứ pháp lý: Điểm b khoản 9 Điều 6 Nghị định số 168/2024/NĐ-CP",
        "Mức phạt tiền: Từ 18.000.000 đồng đến 20.000.000 đồng",
        "Số 2 Lê Đại Hành, phường Hồng Bàng, thành phố Hải Phòng trước ngày 11/12/2026",
        "Giấy chứng nhận đăng ký xe", "Giấy phép lái xe của người điều khiển phương tiện",
        "Điện thoại liên hệ: 0225 3842 135", "Hình ảnh vi phạm", "TRƯỞNG PHÒNG",
        "(văn bản điện tử do hệ thống gửi)", "Số hồ sơ CASE-2026-000123 – trang 1/2",
        "Số hồ sơ CASE-2026-000123 – trang 2/2",
    ):
        assert flat(expected) in text, expected
    embedded = {hashlib.sha256(data).hexdigest() for data in images_of(pdf)}
    assert embedded == {hashlib.sha256(data).hexdigest() for data in images}  # JPEGs embedded as they are
    # The same case renders to the same bytes: the hash in notice.sent identifies the document.
    again = letter.render_letter(config.templates.owner_letter, values, config.unit(reviewed.agency),
                                 issued_at=REVIEWED_AT, images=images, fonts=fonts)
    assert again == pdf


def test_transfer_letter_addresses_the_commune_police(fonts):
    config = example()
    reviewed = case()
    values = decisions.fields(reviewed, vehicle(), owner(commune="00004"), config, notice_at=REVIEWED_AT,
                              respond_by_at=decisions.respond_by(REVIEWED_AT, config),
                              commune=config.communes["00004"].name)
    pdf = letter.render_letter(config.templates.transfer_letter, values, config.unit(reviewed.agency),
                               issued_at=REVIEWED_AT, fonts=fonts)
    text = text_of(pdf)
    assert "PHIẾU CHUYỂN KẾT QUẢ GHI NHẬN VI PHẠM" in text
    assert "Kính gửi: Công an phường Ba Đình, thành phố Hà Nội" in text
    assert "Trần Thị Huệ" in text and "15A-123.45" in text
    assert images_of(pdf) == []
