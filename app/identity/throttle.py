"""Sign-in throttling: failed sign-ins are counted per account and per client address, successes cost nothing."""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

from app.core.ratelimit import Budget, retry_after

# The errors that mean a credential was checked and was wrong; a malformed request or an excessive scope is not.
FAILURES = frozenset({"invalid_grant", "invalid_client"})


def client_address(request: Request) -> str:
    """The address sign-ins are counted by: the peer (or what a trusted proxy named), an IPv6 one by its /64."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))  # one subscriber holds a whole /64
    return str(address)


@dataclass(slots=True)
class Attempt:
    """One sign-in admitted against its budgets; ``settle`` must follow, whatever happens."""

    request: Request
    budgets: list[Budget]
    ticket: str

    async def settle(self, error: str | None) -> None:
        """Give back the attempt's slots; count it against every budget if its credential was wrong."""
        if self.budgets:
            state = self.request.app.state
            window = state.settings.login_failure_window_seconds
            await state.login_limiter.settle(self.budgets, window, self.ticket, time.time(), error in FAILURES)


class Throttled(Exception):
    """The attempt was refused before any credential was checked."""

    def __init__(self, retry_after: int, budgets: list[str]) -> None:
        super().__init__("throttled")
        self.retry_after, self.budgets = retry_after, budgets


def _budgets(request: Request, grant: str | None, account: str | None) -> list[Budget]:
    settings = request.app.state.settings
    per_account, per_address = settings.login_failures_per_account, settings.login_failures_per_address
    budgets = [Budget(f"login:ip:{client_address(request)}", per_address, headroom=per_address, label="address")]
    if account and grant in ("password", "client_credentials"):
        # Keyed hashes: what was typed as a name (sometimes a password) never reaches Redis.
        name = account.lower() if grant == "password" else account
        digest = request.app.state.secrets.hash_secret(name)[:32]
        kind = "acct" if grant == "password" else "client"
        # A person's password budget is strict (nothing in flight beyond it): parallel guesses cannot pass it.
        # An integration may fetch tokens from many workers at once, and its 256-bit secret cannot be guessed.
        headroom = 0 if grant == "password" else per_account
        budgets.append(Budget(f"login:{kind}:{digest}", per_account, headroom, label="account"))
    return [budget for budget in budgets if budget.limit > 0]


async def admit(request: Request, grant: str | None, account: str | None) -> Attempt:
    """Admit a sign-in attempt or raise Throttled: one limiter round trip, atomic over all its budgets."""
    budgets = _budgets(request, grant, account)
    attempt = Attempt(request, budgets, secrets.token_hex(8))
    if budgets:
        state = request.app.state
        window = state.settings.login_failure_window_seconds
        waits = await state.login_limiter.admit(budgets, window, attempt.ticket, time.time())
        if any(waits):
            raise Throttled(retry_after(waits), [b.label for b, wait in zip(budgets, waits, strict=True) if wait])
    return attempt
