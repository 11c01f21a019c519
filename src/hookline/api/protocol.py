"""uvicorn's HTTP protocol (httptools), with its one answer of its own in hookline's envelope.

A request the HTTP parser cannot read (a malformed request line, or a request line or header block
beyond the parser's limits, such as a path of 64 KB) never reaches the application: uvicorn answers it
with a plain-text 400 itself. This subclass gives that answer the same JSON envelope as every other
error. Paths the parser does read but that are too long for hookline are a 414 at the edge
(``hookline.api.limits``).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hookline.api.envelope import REASONS, EnvelopeResponse

_MESSAGE = "the request could not be read as HTTP/1.1 (malformed, or a request line or headers too long)"
_BODY = bytes(
    EnvelopeResponse(
        {"status": False, "code": 400, "message": REASONS[400], "error": _MESSAGE}, status_code=400
    ).body
)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                _BODY,
            ]
        )
        self.transport.write(b"".join(head))
        self.transport.close()
