"""The indicator report as PDF: WeasyPrint renders the report's HTML (Pango from Debian's packages,
Noto Sans CJK SC from fonts-noto-cjk). Imported only when a PDF is asked for: WeasyPrint takes about a
second to import, which no other command should pay.
"""

from __future__ import annotations

from alerts.indicators.render import render_html
from alerts.indicators.report import Report
from yiju.errors import ConfigurationError


def render_pdf(report: Report, lang: str = "zh") -> bytes:
    try:
        from weasyprint import HTML  # noqa: PLC0415 - heavy import, PDF only
    except (ImportError, OSError) as exc:  # OSError: the Pango libraries are missing
        raise ConfigurationError(
            f"PDF rendering needs WeasyPrint and Debian's Pango libraries (deploy/bootstrap.sh installs "
            f"them): {exc}"
        ) from exc
    pdf = HTML(string=render_html(report, lang)).write_pdf()
    assert pdf is not None
    return bytes(pdf)
