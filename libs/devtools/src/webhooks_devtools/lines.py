"""A child's output cut into lines, however long a line is.

asyncio's StreamReader gives up on a line over its 64 KiB limit; a reader that dies stops draining the
pipe, the child blocks on its next write and stops answering. Here a line over `max_bytes` is cut there
with a marker and the rest of it is skipped: the reader always keeps up.
"""

from __future__ import annotations

CUT_MARKER = " [... line cut at {n} bytes]"


class LineSplitter:
    def __init__(self, max_bytes: int = 16 * 1024) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._skipping = False  # inside a line whose head was already given out, cut

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed (or cut) by `chunk`, without their newline."""
        self._buf += chunk
        out: list[bytes] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if not self._skipping and len(self._buf) > self.max_bytes:
                    out.append(self._cut(bytes(self._buf)))
                    self._skipping = True
                if self._skipping:
                    self._buf.clear()
                return out
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._skipping:
                self._skipping = False
            else:
                out.append(self._cut(line) if len(line) > self.max_bytes else line)

    def flush(self) -> list[bytes]:
        """What is left at end of stream (a last line without its newline)."""
        rest = bytes(self._buf)
        self._buf.clear()
        skipping, self._skipping = self._skipping, False
        return [] if skipping or not rest else [rest]

    def _cut(self, line: bytes) -> bytes:
        return line[: self.max_bytes] + CUT_MARKER.format(n=self.max_bytes).encode()
