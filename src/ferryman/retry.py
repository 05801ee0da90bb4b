"""Retry policies: immutable values; the attempt count lives in the journal so it survives restarts."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from ferryman.model import Model
from ferryman.units import Duration


class RetryConfig(Model):
    """``retry = {attempts, delay, backoff, max_delay, same_error}`` on a flow or a step."""

    attempts: int = Field(3, ge=1, description="Total attempts, the first one included (1 = never retry).")
    delay: Duration = Field(10.0, description="Wait before the first retry.")
    backoff: float = Field(2.0, ge=1.0, description="Each further wait is the previous one times this.")
    max_delay: Duration = Field(3600.0, description="Longest wait between attempts.")
    same_error: bool = Field(
        False,
        description="Give up at once when a retry fails with a different error type than the "
        "attempt before (the Rattail File Monitor's rule).",
    )

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.delay, self.backoff, self.max_delay, self.same_error)


@dataclass(frozen=True)
class RetryPolicy:
    """Decides whether failed attempt number `attempt` (1-based) is tried again, and when."""

    attempts: int = 3
    delay: float = 10.0
    backoff: float = 2.0
    max_delay: float = 3600.0
    same_error: bool = False

    def should_retry(self, attempt: int, error_type: str, previous_type: str | None) -> bool:
        """True when another attempt is allowed after `attempt` failed with `error_type`."""
        if attempt >= self.attempts:
            return False
        return not (self.same_error and previous_type is not None and previous_type != error_type)

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay, self.delay * self.backoff ** max(0, attempt - 1)))
