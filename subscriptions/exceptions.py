"""Specific errors raised inside the app; the edges turn them into pages or JSON."""


class TokenInvalid(Exception):
    """The token is malformed, tampered with, or signed for another purpose."""


class TokenExpired(Exception):
    """The token is genuine but too old; `claim` still says what it was for."""

    def __init__(self, claim: object) -> None:
        super().__init__("token expired")
        self.claim = claim


class UnknownNewsletter(Exception):
    """A sign-up named a newsletter that does not exist or is not open to readers."""

    def __init__(self, slugs: list[str]) -> None:
        super().__init__(", ".join(slugs))
        self.slugs = slugs


class AddressErased(Exception):
    """The person asked for their data to be erased; only they may sign up again."""


class IssueInvalid(Exception):
    """An issue that cannot be sent as written; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class IssueNotSendable(Exception):
    """The issue cannot be sent, scheduled or moved now (its state, or no readers)."""
