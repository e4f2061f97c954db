"""Plane geometry in image pixels: the few predicates the scene checks and the rules need.

Kept free of numpy and shapely: scenes have a handful of short polygons and lines, and the
rules call these per track per frame, where plain floats are faster than array set-up.
"""

from __future__ import annotations

import math

Point = tuple[float, float]
Segment = tuple[Point, Point]


def cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def segment_intersection(p: Segment, q: Segment) -> tuple[float, float] | None:
    """Where segment p meets segment q, as (t along p, u along q), both in [0, 1]; None if apart.

    The fraction along p is what turns a crossing between two frames into a crossing time.
    Collinear overlaps count as no crossing: a vehicle moving along a line does not cross it.
    """
    (x1, y1), (x2, y2) = p
    (x3, y3), (x4, y4) = q
    rx, ry = x2 - x1, y2 - y1
    sx, sy = x4 - x3, y4 - y3
    denom = rx * sy - ry * sx
    if denom == 0:
        return None
    qpx, qpy = x3 - x1, y3 - y1
    t = (qpx * sy - qpy * sx) / denom
    u = (qpx * ry - qpy * rx) / denom
    if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
        return t, u
    return None


def crossing(line: Segment, p0: Point, t0: float, p1: Point, t1: float) -> tuple[float, Point] | None:
    """When and where a path crosses a line: (time, point), or None if it does not.

    p0 at time t0 is the last position seen before the line (or before a gap: a dropped frame, a
    track lost and re-associated), p1 at t1 the first one seen after; the crossing time is
    interpolated along the path, so it does not depend on the frame rate or on the gap, and a
    signal phase looked up at that time is the phase at the moment of crossing. The one test for
    every line a vehicle can cross (stop lines, exit lines, speed traps, count lines).

    A path that starts exactly on the line does not cross it (the step that arrived on the line
    did), so one crossing is never counted twice; a path that does not move crosses nothing.
    """
    if p0 == p1:
        return None
    hit = segment_intersection((p0, p1), line)
    if hit is None or hit[0] == 0.0:
        return None
    f = hit[0]
    return t0 + f * (t1 - t0), (p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1]))


def side(line: Segment, point: Point) -> float:
    """Positive on the left of the line's direction, negative on the right (image y grows down)."""
    return cross(line[0], line[1], point)


def point_in_polygon(point: Point, polygon: tuple[Point, ...]) -> bool:
    x, y = point
    inside = False
    n = len(polygon)
    j = n - 1
    for i in range(n):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def polygon_area(polygon: tuple[Point, ...]) -> float:
    return abs(sum(polygon[i][0] * polygon[i - 1][1] - polygon[i - 1][0] * polygon[i][1]
                   for i in range(len(polygon)))) / 2.0


def self_intersection(polygon: tuple[Point, ...]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges that cross (edge i runs from vertex i to i+1), or None.

    A bow-tie lane makes 'inside' ambiguous, so a scene with one is refused rather than guessed.
    """
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex
            if segment_intersection(edges[i], edges[j]) is not None:
                return i, j
    return None


def unit(dx: float, dy: float) -> tuple[float, float]:
    norm = math.hypot(dx, dy)
    return (0.0, 0.0) if norm == 0 else (dx / norm, dy / norm)


def dot(a: tuple[float, float], b: tuple[float, float]) -> float:
    return a[0] * b[0] + a[1] * b[1]
