"""What the simulator's two WSGI apps share: the gateway (AWS's APIs) and the admin API."""

from collections.abc import Callable

StartResponse = Callable[..., object]
WsgiEnviron = dict[str, object]


def read_body(environ: WsgiEnviron) -> bytes:
    """The request body: CONTENT_LENGTH bytes of ``wsgi.input``, none when it is missing or not
    a number (PEP 3333: an app must not read past CONTENT_LENGTH)."""
    try:
        length = int(str(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    return stream.read(length) if length > 0 and hasattr(stream, "read") else b""
