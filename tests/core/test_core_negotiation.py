"""Accept negotiation: the most specific matching range weighs, ties and no header keep the default."""

import pytest

from app.core.negotiation import negotiate

OFFERED = ("image/svg+xml", "application/octet-stream")


@pytest.mark.parametrize(("accept", "chosen"), [
    (None, "image/svg+xml"),
    ("", "image/svg+xml"),
    ("*/*", "image/svg+xml"),
    ("application/*", "application/octet-stream"),
    ("Application/Octet-Stream", "application/octet-stream"),
    ("image/svg+xml;q=0.2, application/octet-stream;q=0.9", "application/octet-stream"),
    ("application/octet-stream;q=0.5, */*", "image/svg+xml"),
    ("*/*, image/svg+xml;q=0", "application/octet-stream"),
    ("application/octet-stream;q=oops", "image/svg+xml"),
    ("text/html", "image/svg+xml"),
])
def test_negotiate(accept, chosen):
    assert negotiate(accept, OFFERED) == chosen
