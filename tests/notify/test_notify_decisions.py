"""Which notices a case gets: pure decisions, no I/O."""

from __future__ import annotations

from notify_samples import REVIEWED_AT, case, example, owner, vehicle
from services.notify import decisions


def kinds(planned):
    return sorted((p.kind, p.channel, p.recipient, p.transport, p.address) for p in planned)


def test_owner_in_area_gets_email_sms_and_letter_only():
    config = example()
    planned = decisions.plan_case(case(), vehicle(), owner(commune="11311"), config)
    assert kinds(planned) == [
        ("owner_notice", "email", "owner", "smtp", "tran.thi.hue@example.vn"),
        ("owner_notice", "post", "owner", "spool", "Số 18 ngõ 45 Lạch Tray, phường Ngô Quyền, Hải Phòng"),
        ("owner_notice", "sms", "owner", "sms", "0912345678"),
    ]
    # Deterministic ids: deciding twice (a redelivery, another replica) gives the same notices.
    assert planned == decisions.plan_case(case(), vehicle(), owner(commune="11311"), config)
    assert len({p.notice_id for p in planned}) == 3


def test_owner_outside_the_area_is_transferred_to_their_commune_police():
    config = example()
    planned = decisions.plan_case(case(), vehicle(), owner(commune="00004"), config)
    transfer = [p for p in planned if p.kind == "commune_transfer"]
    assert [(p.channel, p.recipient, p.transport, p.address, p.document) for p in transfer] == [
        ("commune_police", "00004", "smtp", "congan.badinh@hanoi.gov.vn", "transfer_letter")]
    # A commune missing from the configuration is still planned, to fail visibly when sent.
    unknown = [p for p in decisions.plan_case(case(), vehicle(), owner(commune="79001"), config)
               if p.kind == "commune_transfer"]
    assert [(p.recipient, p.address) for p in unknown] == [("79001", "")]


def test_without_email_or_phone_the_paper_letter_still_goes():
    config = example()
    planned = decisions.plan_case(case(), vehicle(), owner(email="", phone=""), config)
    assert [(p.channel, p.transport) for p in planned] == [("post", "spool")]


def test_rejected_case_gets_nothing():
    assert decisions.plan_case(case(decision="rejected"), vehicle(), owner(), example()) == []


def test_inspection_warning_for_a_car_and_for_a_motorbike():
    config = example()
    car = decisions.plan_inspection("CASE-1", vehicle(), owner(commune="11410"), config, "inspection_warning")
    assert [(p.channel, p.recipient, p.address) for p in car] == [
        ("inspection_registry", "inspection-registry", "canhbao@vr.org.vn")]
    bike = decisions.plan_inspection("CASE-1", vehicle("15B112345", "15-B1 123.45", "motorcycle"),
                                     owner(commune="11410"), config, "inspection_lifted")
    assert [(p.kind, p.channel, p.recipient, p.address) for p in bike] == [
        ("inspection_lifted", "inspection_registry", "inspection-registry", "canhbao@vr.org.vn"),
        ("inspection_lifted", "commune_police", "11410", "congan.kienan@haiphong.gov.vn")]


def test_deadlines_and_wording_follow_the_configuration():
    config = example()
    assert decisions.respond_by(REVIEWED_AT, config).date().isoformat() == "2026-12-11"
    assert decisions.warning_due(REVIEWED_AT, config).date().isoformat() == "2026-12-11"
    values = decisions.fields(case(), vehicle(), owner(), config, notice_at=REVIEWED_AT,
                              respond_by_at=decisions.respond_by(REVIEWED_AT, config))
    assert values["violation_time"] == "07 giờ 45 phút, ngày 20/11/2026"
    assert values["respond_by"] == "11/12/2026"
    assert values["notice_date_long"] == "ngày 21 tháng 11 năm 2026"
    assert values["plate_colour"] == "Nền màu trắng, chữ và số màu đen"
    assert decisions.render(config.templates.sms, values).startswith("CSGT: xe 15A-123.45 vi pham")
