"""A background service for tests (`with Service() as s:`): started on entry, stopped on exit,
and stopped again if starting fails halfway, so nothing it launched outlives the test."""

from __future__ import annotations


class Service:
    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
