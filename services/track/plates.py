"""A track's best plate: confidence-weighted voting over every read of it.

One frame's read of a motorbike plate is often wrong in a character or two (blur, angle, a
rider's leg); the same vehicle read ten times agrees with itself far more often than the OCR
does. Reads that fit a Vietnamese plate format outvote any number of reads that do not: a
malformed read can be a right plate half seen, but it cannot be sent to the registry as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proto.v1.common import PlateAlternative, PlateText


@dataclass(frozen=True)
class PlateSighting:
    """One read, with where it was seen so that the evidence can show the crop."""

    read: PlateText
    stream_seq: int
    box: tuple[float, float, float, float]


@dataclass
class PlateVotes:
    weights: dict[tuple[bool, str], float] = field(default_factory=dict)
    counts: dict[tuple[bool, str], int] = field(default_factory=dict)
    reads: dict[tuple[bool, str], PlateText] = field(default_factory=dict)
    best_sighting: PlateSighting | None = None  # the single most confident read, for the crop

    def add(self, sighting: PlateSighting) -> None:
        read = sighting.read
        if not read.text:
            return
        key = (read.format_valid, read.text)
        self.weights[key] = self.weights.get(key, 0.0) + max(read.confidence, 1e-3)
        self.counts[key] = self.counts.get(key, 0) + 1
        if key not in self.reads or read.confidence > self.reads[key].confidence:
            self.reads[key] = read
        best = self.best_sighting
        if best is None or (read.format_valid, read.confidence) > (best.read.format_valid, best.read.confidence):
            self.best_sighting = sighting

    def merge(self, other: "PlateVotes") -> None:
        """Add another track's votes (the same vehicle under two track ids)."""
        for key, weight in other.weights.items():
            self.weights[key] = self.weights.get(key, 0.0) + weight
            self.counts[key] = self.counts.get(key, 0) + other.counts[key]
            if key not in self.reads or other.reads[key].confidence > self.reads[key].confidence:
                self.reads[key] = other.reads[key]
        mine, theirs = self.best_sighting, other.best_sighting
        if theirs is not None and (mine is None or (theirs.read.format_valid, theirs.read.confidence)
                                   > (mine.read.format_valid, mine.read.confidence)):
            self.best_sighting = theirs

    def best(self, max_alternatives: int = 3) -> PlateText | None:
        """The winner among format-valid reads (or, without any, among the rest).

        Its confidence is its share of the group's votes times its mean read confidence: ten
        reads that agree beat one confident read, and a split vote lowers the confidence.
        """
        if not self.weights:
            return None
        valid = any(v for v, _ in self.weights)
        group = {key: w for key, w in self.weights.items() if key[0] == valid}
        support = dict(group)
        if valid:
            # A partial read ('55878' of a motorbike's lower line) cannot be sent on, but it does
            # back the valid read that contains it: it ranks the candidates, not the confidence.
            for (is_valid, text), weight in self.weights.items():
                partial = _alnum(text)
                if is_valid or len(partial) < 4:
                    continue
                for key in group:
                    if partial in _alnum(key[1]):
                        support[key] += weight
        ranked = sorted(group, key=lambda key: (-support[key], -group[key], key[1]))
        total = sum(group.values())
        winner = ranked[0]
        mean_conf = group[winner] / self.counts[winner]
        confidence = round(min(1.0, mean_conf * group[winner] / total), 4)
        alternatives = tuple(
            PlateAlternative(text=key[1], confidence=round(min(1.0, group[key] / total), 4))
            for key in ranked[1 : 1 + max_alternatives]
        )
        read = self.reads[winner]
        return PlateText(text=read.text, raw=read.raw, confidence=confidence, layout=read.layout,
                         format_valid=read.format_valid, alternatives=alternatives)


def _alnum(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())
