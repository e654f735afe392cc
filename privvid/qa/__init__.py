"""Dataset QA: seeded class-balanced review samples, an HTML review sheet, pass-rate reports
with Wilson intervals, and an automatic privacy audit that re-detects people on the outputs."""

from privvid.qa.audit import AuditConfig, AuditResult, audit, audit_output, summary, write_audit
from privvid.qa.dataset import AnonClip, QAError, scan
from privvid.qa.report import report, report_markdown, wilson
from privvid.qa.sample import choose, sample
from privvid.qa.sheet import VERDICTS, make_server, write_sheet

__all__ = ["AnonClip", "AuditConfig", "AuditResult", "QAError", "VERDICTS", "audit", "audit_output", "choose", "make_server",
           "report", "report_markdown", "sample", "scan", "summary", "wilson", "write_audit", "write_sheet"]
