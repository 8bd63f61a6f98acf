"""The one error the rules raise: a refusal with a stable rule id and code."""

from typing import Any


class RuleViolation(Exception):
    """A rule of rules.md refused an action; `message` is plain English safe to show a clinician."""

    def __init__(
        self,
        rule: str,
        code: str,
        message: str,
        *,
        status: int = 409,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.code = code
        self.message = message
        self.status = status
        self.context: dict[str, Any] = dict(context or {})

    def as_dict(self) -> dict[str, Any]:
        """The refusal as JSON-ready data: rule, code, status, message and context."""
        return {
            "rule": self.rule,
            "code": self.code,
            "status": self.status,
            "message": self.message,
            "context": dict(self.context),
        }

    def __repr__(self) -> str:
        return f"RuleViolation(rule={self.rule!r}, code={self.code!r}, status={self.status})"
