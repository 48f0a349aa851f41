"""Recording accepted messages durably, right after the server's 250 reply."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from newsletter.runtime import Runtime
from newsletter.store import deliveries


class MarkWriter:
    """Records accepted messages with group commit; `sent` returns once it is durable.

    A sending thread calls `sent` right after the server's 250 and sends nothing more
    until it returns, so a crash can repeat at most one message per connection. The
    first caller to find no commit running becomes the leader and commits every mark
    waiting at that moment in one transaction; the others wait for that commit. Under
    load one commit carries several marks, and SQLite's single writer is asked once.
    """

    def __init__(self, context: Runtime) -> None:
        self.context = context
        self._recorder = deliveries.SentRecorder(context.engine)  # one leader at a time
        self._cond = threading.Condition()
        self._open: _Group = _Group()
        self._writing = False

    def sent(self, mark: deliveries.SentMark) -> None:
        with self._cond:
            group = self._open
            group.marks.append(mark)
            while not group.done:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                batch, self._open = self._open, _Group()
                self._cond.release()
                try:
                    batch.error = self._write(batch.marks)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    batch.done = True
                    self._cond.notify_all()
        if group.error is not None:
            raise group.error

    def _write(self, marks: Sequence[deliveries.SentMark]) -> BaseException | None:
        try:
            self._recorder.record(marks)
        except Exception as exc:  # every waiter of this group learns of it
            return exc
        return None

    def close(self) -> None:
        self._recorder.close()


@dataclass
class _Group:
    marks: list[deliveries.SentMark] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None
