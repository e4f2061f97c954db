"""`roadwatch report --send` reads notify's SMTP_* settings through the same fields as the service."""

from __future__ import annotations

import pytest

from services.notify.report_mail import smtp_from_environ


def test_the_report_command_reads_notifys_smtp_settings(capsys: pytest.CaptureFixture[str]) -> None:
    smtp = smtp_from_environ({"SMTP_HOST": "mail.example.vn", "SMTP_PORT": "587", "SMTP_TLS": "starttls"})
    assert (smtp.host, smtp.port, smtp.tls, smtp.timeout_s) == ("mail.example.vn", 587, "starttls", 30.0)
    for environ, variable in (({"SMTP_PORT": "smtp"}, "SMTP_PORT"), ({"SMTP_TLS": "ssl"}, "SMTP_TLS")):
        with pytest.raises(SystemExit) as caught:
            smtp_from_environ(environ)
        assert caught.value.code == 2 and f"invalid setting {variable}" in capsys.readouterr().err
