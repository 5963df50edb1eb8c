"""Every error lowcarb raises, rooted at :class:`LowcarbError`.

The tree (builtin mix-ins in brackets, so ``except ValueError`` in user code also works)::

    LowcarbError
    ├─ ConfigurationError [ValueError]
    │  ├─ UnknownProviderError
    │  └─ MissingCredentialError
    ├─ InvalidInputError [ValueError]
    │  ├─ UnknownZoneError (.zone, .suggestions)
    │  └─ DataValidationError (.source)
    ├─ LedgerError (.path)
    └─ ProviderError (.provider, .status_code)
       ├─ AuthenticationError
       ├─ RateLimitedError (.retry_after)
       ├─ NoDataError
       ├─ ProviderUnavailableError [ConnectionError]
       ├─ ProviderTimeoutError [TimeoutError]
       └─ ResponseParseError

Each message says what went wrong *and* what to do about it. Messages never
contain credentials: :func:`redact` scrubs anything that looks like one.
"""

from __future__ import annotations

import re

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DataValidationError",
    "InvalidInputError",
    "LedgerError",
    "LowcarbError",
    "MissingCredentialError",
    "NoDataError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ResponseParseError",
    "UnknownProviderError",
    "UnknownZoneError",
    "redact",
]

# Query parameters, headers and JSON fields that carry secrets at one provider or another.
_SECRET_PATTERN = re.compile(
    r"(?i)(securityToken|auth-token|api[_-]?key|token|password|authorization)"
    r"(\s*[=:]\s*[\"']?)(Bearer\s+|Basic\s+)?[^\s&\"',;]+"
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` with credentials replaced by ``REDACTED``.

    Args:
        text: Any message, URL or log line.
        secrets: Known secret values to scrub wherever they appear.

    Returns:
        The scrubbed text.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "REDACTED")
    return _SECRET_PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", text)


class LowcarbError(Exception):
    """Root of every error raised by lowcarb."""


class ConfigurationError(LowcarbError, ValueError):
    """The configuration (file, environment or arguments) is invalid."""


class UnknownProviderError(ConfigurationError):
    """A provider name is not registered."""


class MissingCredentialError(ConfigurationError):
    """A provider needs a credential that no environment variable provides."""


class InvalidInputError(LowcarbError, ValueError):
    """An argument or a piece of data is invalid."""


class UnknownZoneError(InvalidInputError):
    """A zone is not known to the provider or to the zone catalog.

    Attributes:
        zone: The zone as given.
        suggestions: Close matches among the known zones, best first.
    """

    #: What the message ends with unless told otherwise.
    LISTING = "Run `lowcarb zones` to list the zones served."

    def __init__(
        self,
        zone: str,
        suggestions: list[str],
        where: str = "",
        detail: str = "",
        *,
        listing: str | None = None,
    ) -> None:
        self.zone = zone
        self.suggestions = suggestions
        self._parts = (where, detail)
        self._listing = listing
        super().__init__(self.message())

    def message(self, listing: str | None = None) -> str:
        """The message, ending with ``listing`` (how to list the zones served) if given.

        A face other than the command line names its own listing (the service: its
        ``GET /v1/zones``), unless the message already lists the zones.
        """
        where, detail = self._parts
        hint = f" Did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        place = f" for {where}" if where else ""
        more = f" ({detail})" if detail else ""
        # ``listing`` says how to list the zones that *are* known, or nothing ("") when the
        # message already lists them: `lowcarb zones` lists the configured provider's only.
        if listing is None or self._listing == "":
            tail = self.LISTING if self._listing is None else self._listing
        else:
            tail = listing
        return f"unknown zone {self.zone!r}{place}{more}.{hint}" + (f" {tail}" if tail else "")


class DataValidationError(InvalidInputError):
    """Carbon-intensity data (a file or a response) breaks a validation rule.

    Attributes:
        source: Where the data came from (a path, or a provider name).
    """

    def __init__(self, message: str, source: str = "") -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class LedgerError(LowcarbError):
    """The participation ledger cannot be opened, read or written.

    The storage is at fault, not the caller's input: a read-only folder, a full disk, a
    file that is not a lowcarb ledger, a state folder another process holds. Nothing
    already recorded is lost. The message names the ledger by its file name only, so that
    it can be shown to remote callers; ``path`` has the whole path, for logs.

    Attributes:
        path: The ledger file or state folder, or None for an in-memory ledger.
    """

    def __init__(self, message: str, *, path: object = None) -> None:
        self.path = path
        super().__init__(message)


class ProviderError(LowcarbError):
    """A carbon-intensity provider failed.

    Attributes:
        provider: The provider's registry name.
        status_code: The HTTP status, when there was one.
    """

    def __init__(self, message: str, *, provider: str = "", status_code: int | None = None):
        self.provider = provider
        self.status_code = status_code
        prefix = f"{provider}: " if provider else ""
        super().__init__(redact(prefix + message))


class AuthenticationError(ProviderError):
    """The provider rejected the credentials. Never retried."""


class RateLimitedError(ProviderError):
    """The provider asked us to slow down.

    Attributes:
        retry_after: Seconds the provider asked to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status_code=status_code)


class NoDataError(ProviderError):
    """The provider has no data for the zones and times asked."""


class ProviderUnavailableError(ProviderError, ConnectionError):
    """The provider could not be reached or answered with a server error."""


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The provider did not answer in time."""


class ResponseParseError(ProviderError):
    """The provider answered with a body lowcarb cannot interpret."""
