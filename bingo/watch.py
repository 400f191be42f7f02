"""Whether the HTTP client is still there, read from its socket without taking its data.

End of input is not "gone": a client may shut down its sending side once its request
is out (a half-close) and still read the whole answer. A reset, or a write that
fails, is gone. Over TLS (gunicorn's own certfile) the raw TCP bytes are peeked and
end of input is gone: no probe can be written into the TLS stream. No Flask here:
routes.py makes a SocketWatch per request, and the upstream turn polls it
(upstream/frames.py).
"""
from __future__ import annotations

import select
import socket
import ssl
import struct

# An interim response clients must accept unasked (RFC 9110 section 15.2: "A client
# MUST be able to parse one or more 1xx responses received prior to a final
# response"); never sent to an HTTP/1.0 client, which knows no 1xx.
PROBE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TCPI_RTT = 68  # offset of tcpi_rtt (microseconds) in Linux's struct tcp_info


class SocketWatch:
    """The client's socket, asked whether its peer has gone.

    On Linux a peer that closed its socket and one that only shut down its sending
    side look the same from here (a FIN: our end reads EOF and sits in CLOSE_WAIT)
    until something is sent to it: a closed socket answers with a reset, after which
    poll() reports POLLHUP|POLLERR. So at the first end of input, while the answer has
    not started, the watch sends PROBE once and waits a few round trips (TCP_INFO's
    smoothed RTT, 10-250 ms) for that reset. Once the answer has started its own
    writes probe, and the reset they cause wakes the poller (POLLHUP is reported
    whatever events are registered). An HTTP/1.0 client cannot be probed: its end of
    input still counts as gone. A caller that polls the socket must, once gone() has
    said False for a readable socket, poll it for hang-ups only (events 0), as
    upstream/frames.py does: a half-closed socket stays readable for good.
    """

    def __init__(self, sock: socket.socket, *, http11: bool) -> None:
        self._sock = sock
        self._probe_ok = http11 and not isinstance(sock, ssl.SSLSocket)  # an interim response may be written
        self._started = False  # the answer's first byte is out: no more probes
        self._probed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def answer_started(self) -> None:
        self._started = True

    def gone(self) -> bool:
        """Called when the socket is readable or hung up; waits only for the one probe."""
        if self._hung_up(0.0):
            return True
        try:
            # socket.socket's own recv: an SSLSocket refuses flags (ValueError); the raw bytes are enough here.
            pending = socket.socket.recv(self._sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if pending:
            return False  # a pipelined request, not a close
        if not self._probe_ok:
            return True
        if self._started or self._probed:
            return False
        self._probed = True
        return self._probe()

    def left(self) -> bool:
        """Whether the client has gone by now: no wait unless it sent its end of input."""
        poll = select.poll()
        poll.register(self._sock, select.POLLIN)
        return bool(poll.poll(0)) and self.gone()

    def _probe(self) -> bool:
        try:
            self._sock.send(PROBE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:  # EPIPE, ECONNRESET: the reset was already in
            return True
        return self._hung_up(_round_trips(self._sock))

    def _hung_up(self, seconds: float) -> bool:
        poll = select.poll()
        poll.register(self._sock, 0)  # POLLHUP and POLLERR only, which poll always reports
        return bool(poll.poll(seconds * 1000))


def _round_trips(sock: socket.socket) -> float:
    """Seconds to wait for a reset: three smoothed round trips, within 10-250 ms."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        rtt = struct.unpack_from("I", info, _TCPI_RTT)[0] / 1e6
    except (OSError, AttributeError, struct.error):  # not TCP (a socketpair in tests), not Linux
        rtt = 0.0
    return min(0.25, max(0.01, 3 * rtt))
