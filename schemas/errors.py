"""The one error type raised when bytes do not satisfy a contract."""


class InvalidMessage(ValueError):
    """A message failed validation.

    ``reason`` is a short stable code (used as a metric label and in dead letters); ``detail`` says
    what exactly was wrong, for a human.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
