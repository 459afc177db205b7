"""Reading a remote file end to end with many requests in flight, for read-back checks and downloads.

paramiko's ``SFTPFile.prefetch`` issues its reads from a background thread and
counts the file fully fetched whenever no request is outstanding. When the
server answers faster than that thread sends (a fast link, a busy CPU), it
stops early and every later read becomes one synchronous round trip, behind the
replies still arriving for the abandoned requests, which it also buffers: a
45 MB read-back took 10 s instead of under 1 s, holding up to the whole file.

``read_chunks`` sends the reads itself (from a helper thread, as paramiko
does) but keeps at most ``window`` of them in flight and takes the replies in
the order it knows it asked for them, so memory stays bounded and nothing
decides early that the file is done.

It reads until the server says end of file, as a plain read loop would: the
size seen at open only decides how far to read ahead, never what counts as the
file. A short reply (which a server may send) ends the read-ahead, and the rest
is read one request at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

import paramiko
from paramiko.sftp import CMD_DATA, CMD_READ, int64

from transfers.delivery.session import SftpFile

__all__ = ["CHUNK", "WINDOW", "read_chunks"]

CHUNK = 32 * 1024  # paramiko's SFTP request size (SFTPFile.MAX_REQUEST_SIZE)
#: Reads in flight (4 MB): fewer left the link idle in a 45 MB benchmark, more gained nothing.
WINDOW = 128


class _Replies:
    """Where paramiko hands the replies to our reads (it calls ``_async_response`` on the request's file object)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.got: dict[int, bytes | BaseException] = {}

    def _async_response(self, kind: int, msg: paramiko.Message, num: int) -> None:
        if kind == CMD_DATA:
            self.got[num] = msg.get_binary()
            return
        try:
            self.client._convert_status(msg)  # raises EOFError at end of file, OSError for a refusal
        except (EOFError, OSError) as exc:
            self.got[num] = exc
        else:
            self.got[num] = OSError(f"SFTP read answered with message type {kind}, not data")


def read_chunks(fh: SftpFile, *, window: int = WINDOW) -> Iterator[bytes]:
    """The bytes of the open remote file ``fh`` from its start to end of file, in order.

    Raises what the reads raise (``OSError``, ``paramiko.SSHException``, ``socket.timeout``);
    callers run it inside ``sftp_call``.
    """
    offset = 0
    if isinstance(fh, paramiko.SFTPFile):
        offset = yield from _read_ahead(fh, fh.stat().st_size or 0, window)
    # What the read-ahead did not reach (or a fake's file): one request at a time, until end of file.
    fh.seek(offset)
    while chunk := fh.read(CHUNK):
        yield chunk


def _read_ahead(fh: paramiko.SFTPFile, size: int, window: int) -> Generator[bytes, None, int]:
    """Read ``fh`` up to ``size`` with up to ``window`` requests in flight; returns the offset reached.

    A second thread sends the requests while this one takes the replies: one thread doing both
    spends as long building and sealing requests as the server takes to answer them.
    """
    # The request/reply calls are paramiko internals (no public API pipelines reads without its thread).
    client: Any = fh.sftp
    replies = _Replies(client)
    sent: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()  # (request number, length), in order
    room, stop, failed = threading.Semaphore(window), threading.Event(), []

    def send() -> None:
        try:
            for asked in range(0, size, CHUNK):
                while not room.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                length = min(CHUNK, size - asked)
                sent.put((client._async_request(replies, CMD_READ, fh.handle, int64(asked), int(length)), length))
        except BaseException as exc:  # handed to the reading thread, which raises it
            failed.append(exc)
        finally:
            sent.put(None)

    sender = threading.Thread(target=send, name="sftp-read-ahead", daemon=True)
    sender.start()
    offset = 0
    try:
        while (request := sent.get()) is not None:
            num, length = request
            while num not in replies.got:
                client._read_response()  # one reply, handed to ``replies``
            room.release()
            reply = replies.got.pop(num)
            if isinstance(reply, EOFError):
                return offset  # the file shrank since the stat; the plain loop confirms where it ends
            if isinstance(reply, BaseException):
                raise reply
            yield reply
            offset += len(reply)
            if len(reply) != length:
                return offset  # a short reply: later replies may not start where this one ended
        if failed:
            raise failed[0]
        return offset
    finally:
        # Replies still due reach ``replies`` (and are dropped) as later requests read past them.
        stop.set()
        sender.join()
