"""Log line formats: JSON in production, readable text in development, both carrying a job's ids.

Services log with `extra={"job_id": …, "offer_id": …}`; `grep '"job_id": 42'` (JSON) or
`grep 'job=42'` (text) then tells one job's whole story across web and worker processes.
"""
import logging

CONTEXT_FIELDS = ("job_id", "offer_id", "provider_id")


class ReadableFormatter(logging.Formatter):
    """`time level logger message [job=… offer=…]` for a developer's terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name.removesuffix('_id')}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        return f"{line} [{context}]" if context else line
