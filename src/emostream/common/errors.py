"""The one exception root of Emostream and its meaningful subclasses."""


class EmostreamError(Exception):
    """Root of every error Emostream raises on purpose."""


class ConfigurationError(EmostreamError):
    """Settings are missing or inconsistent; raised at start-up, never mid-request."""


class InvalidEventError(EmostreamError):
    """An event failed validation; ``field`` names the offending input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BackpressureError(EmostreamError):
    """A downstream system (Kafka's local queue, a client queue) cannot take more right now."""


class StackError(EmostreamError):
    """The local stack could not be started, checked or stopped."""
