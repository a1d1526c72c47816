"""Indicator verification (indicators.md, domain.md §7): the assessor's score sheet.

`scoring` applies the seeds' rules to an evidence extract (`storage.indicators.extract`), `report` builds
the report with its summary, charts and fingerprint, `render` and `pdf` present it, and `config` holds
the per-assessment settings. All pure but `pdf` (which calls WeasyPrint).
"""
