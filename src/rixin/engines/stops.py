"""Stop strings over a stream of text pieces: the one scanner every engine uses."""

from __future__ import annotations


class StopScanner:
    """Cuts the stream before the first stop string, which may arrive split over several pieces.

    Text that could be the beginning of a stop string is held back until the next piece shows
    whether it is one. No stop string can start inside text already released, so the search
    starts at the first unreleased character.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0  # characters of self.text released so far

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text safe to release now, whether a stop string was found)."""
        self.text += piece
        found = [i for i in (self.text.find(s, self.sent) for s in self.stops) if i >= 0]
        end = min(found) if found else len(self.text) - self._held_back()
        released, self.sent = self.text[self.sent:end], end
        return released, bool(found)

    def flush(self) -> str:
        """What is held back, released as final text (the stream ended without a stop)."""
        released, self.sent = self.text[self.sent:], len(self.text)
        return released

    def _held_back(self) -> int:
        """Length of the longest unreleased tail that is a proper prefix of some stop string."""
        tail = self.text[self.sent:]
        longest = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(tail)), longest, -1):
                if tail.endswith(stop[:k]):
                    longest = k
                    break
        return longest
