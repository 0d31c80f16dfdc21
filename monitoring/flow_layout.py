"""A layered (Sugiyama-style) drawing of a directed graph, in pixels: where every box, edge and edge label goes.

Pure geometry over sizes the caller measured (the view knows its fonts, this module knows none), so the same
topology always gets the same drawing and it can be checked without a browser. The steps and the guarantees
(edges never pass through a box that is not their end, labels never overlap) are described in docs/flow.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

RANK_GAP = 30.0
"""Horizontal room between two columns: only edges run there."""
STUB = 10.0
"""The straight piece of an edge before it enters its target's box (the arrowhead sits on it)."""
NODE_SPACING = 16.0
"""Vertical room between a box and its neighbour in the same column."""
DUMMY_SPACING = 6.0
"""Vertical room between two edges passing through the same column."""
DUMMY_HEIGHT = 4.0
LABEL_LINE = 4.0
"""Room under an edge label for the edge itself."""
MARGIN = 12.0
BAND_PAD = 8.0
"""Room between a band's edge and the boxes in it."""
SWEEPS = 8
"""Crossing-reduction passes (down and up); the best order seen is kept."""


@dataclass(frozen=True, slots=True)
class LayoutNode:
    id: str
    width: float
    height: float
    band: int | None = None
    """Index of the band (medallion layer) the node belongs to, in the bands' data-flow order."""
    column: int = 0
    """Where the node would go by its kind (0 = leftmost): only for nodes without any edge."""


@dataclass(frozen=True, slots=True)
class LayoutEdge:
    source: str
    target: str
    label_width: float = 0.0
    label_height: float = 0.0
    """0 x 0: no label."""


@dataclass(frozen=True, slots=True)
class Rect:
    """Centre and size, y downwards."""

    x: float
    y: float
    width: float
    height: float

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        return self.x + self.width / 2

    @property
    def top(self) -> float:
        return self.y - self.height / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True, slots=True)
class Route:
    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    """A polyline from the source's box to the target's; the last piece is horizontal (the arrowhead's)."""
    label: Rect | None


@dataclass(frozen=True, slots=True)
class BandArea:
    band: int
    area: Rect
    header: Rect
    """The strip at the band's top for its title; nothing else is drawn there."""


@dataclass(frozen=True, slots=True)
class FlowLayout:
    boxes: dict[str, Rect]
    routes: tuple[Route, ...]
    bands: tuple[BandArea, ...]
    width: float
    height: float
    crossings: int
    """Edge crossings left after crossing reduction (between adjacent columns)."""
    bands_in_order: bool
    """False when the edges contradict the bands' order (a later band feeding an earlier one): the bands are then
    drawn where their boxes fell and may overlap."""


@dataclass(slots=True)
class _Item:
    """A box in one column: a node, an edge's label, or a point an edge passes through."""

    key: object
    rank: int
    width: float
    height: float
    line: float
    """Where an edge crosses the item, below its centre (0: the centre)."""
    band: int | None
    real: bool
    y: float = 0.0


def layered_layout(nodes: Sequence[LayoutNode], edges: Sequence[LayoutEdge], band_headers: Sequence[tuple[float,
                   float]] = ()) -> FlowLayout:
    """band_headers: (width, height) of each band's title, in band order; nodes name their band by index."""
    ids = {n.id: n for n in nodes}
    edges = [e for e in edges if e.source in ids and e.target in ids and e.source != e.target]
    forward = _break_cycles([n.id for n in nodes], edges)
    ranks, in_order = _ranks(nodes, edges, forward, len(band_headers))

    # Columns: a node at 2 * rank; the odd columns between hold edge labels and the points long edges pass.
    items: dict[object, _Item] = {n.id: _Item(n.id, 2 * ranks[n.id], n.width, n.height, 0.0, n.band, True)
                                  for n in nodes}
    chains: list[list[object]] = []
    for index, edge in enumerate(edges):
        a, b = (edge.source, edge.target) if forward[index] else (edge.target, edge.source)
        chain: list[object] = [a]
        first, last = 2 * ranks[a] + 1, 2 * ranks[b] - 1
        band = ids[a].band if ids[a].band == ids[b].band else None
        for column in range(first, last + 1):
            key = ("edge", index, column)
            if column == last and edge.label_width > 0:
                items[key] = _Item(key, column, edge.label_width, edge.label_height + LABEL_LINE,
                                   (edge.label_height + LABEL_LINE) / 2 - 1, band, False)
            else:
                items[key] = _Item(key, column, 0.0, DUMMY_HEIGHT, 0.0, band, False)
            chain.append(key)
        chain.append(b)
        chains.append(chain)
    columns = 2 * max(ranks.values(), default=0) + 1
    band_columns = _band_columns(nodes, ranks, len(band_headers)) if in_order else {}
    preds: dict[object, list[object]] = {k: [] for k in items}
    succs: dict[object, list[object]] = {k: [] for k in items}
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            succs[a].append(b)
            preds[b].append(a)

    order = _order(items, columns, preds, succs, band_columns, [n.id for n in nodes])
    crossings = _crossings(order, succs)
    header = max((h for _, h in band_headers), default=0.0)
    top = MARGIN + (header + BAND_PAD if band_headers else 0.0)
    _assign_y(order, items, preds, succs, band_columns, top)

    # x: every column as wide as its widest item (a band at least as wide as its title).
    widths = [max((items[k].width for k in column), default=0.0) for column in order]
    for band, (lo, hi) in _band_spans(nodes, ranks, len(band_headers)).items():
        span = sum(widths[2 * lo: 2 * hi + 1]) + RANK_GAP * 2 * (hi - lo) + 2 * BAND_PAD
        if band_headers[band][0] > span:
            widths[2 * hi] += band_headers[band][0] - span
    lefts, x = [], MARGIN + BAND_PAD
    for width in widths:
        lefts.append(x)
        x += width + RANK_GAP
    width = x - RANK_GAP + BAND_PAD + MARGIN

    def centre_x(item: _Item) -> float:
        return lefts[item.rank] + widths[item.rank] / 2

    boxes = {n.id: Rect(centre_x(items[n.id]), items[n.id].y, n.width, n.height) for n in nodes}
    ports = _ports(order, items, succs, preds, boxes)
    routes = []
    for index, edge in enumerate(edges):
        chain = chains[index]
        a, b = chain[0], chain[-1]
        start, end = ports[(a, chain[1])], ports[(b, chain[-2])]
        # Stubs in the gaps beside both ends: the arrowhead always sits on a straight piece, whichever way.
        points = [(boxes[a].right, start), (lefts[items[a].rank] + widths[items[a].rank] + STUB, start)]
        label = None
        for key in chain[1:-1]:
            item = items[key]
            line = item.y + item.line
            points += [(lefts[item.rank], line), (lefts[item.rank] + widths[item.rank], line)]
            if item.width > 0:
                label = Rect(centre_x(item), item.y - LABEL_LINE / 2, item.width, item.height - LABEL_LINE)
        points += [(lefts[items[b].rank] - STUB, end), (boxes[b].left, end)]
        if not forward[index]:  # laid out against the flow: the arrow still ends at the edge's target
            points.reverse()
        routes.append(Route(edge.source, edge.target, _dedupe(points), label))

    bottom = max((i.y + i.height / 2 for i in items.values()), default=top)
    bands = []
    for band, (lo, hi) in sorted(_band_spans(nodes, ranks, len(band_headers)).items()):
        members = [boxes[n.id] for n in nodes if n.band == band]
        area_bottom = max(r.bottom for r in members) + BAND_PAD
        x0, x1 = lefts[2 * lo] - BAND_PAD, lefts[2 * hi] + widths[2 * hi] + BAND_PAD
        if not in_order:
            x0, x1 = min(r.left for r in members) - BAND_PAD, max(r.right for r in members) + BAND_PAD
        y0 = MARGIN
        area = Rect((x0 + x1) / 2, (y0 + area_bottom) / 2, x1 - x0, area_bottom - y0)
        head = band_headers[band][1]
        bands.append(BandArea(band, area, Rect(area.x, y0 + head / 2, x1 - x0, head)))
    return FlowLayout(boxes, tuple(routes), tuple(bands), width, bottom + MARGIN + BAND_PAD, crossings, in_order)


# -- layering ----------------------------------------------------------------------------------------------------


def _break_cycles(ids: list[str], edges: list[LayoutEdge]) -> list[bool]:
    """For each edge: True to keep its direction, False where it closes a cycle (depth-first, in node order)."""
    out: dict[str, list[tuple[int, str]]] = {i: [] for i in ids}
    for index, edge in enumerate(edges):
        out[edge.source].append((index, edge.target))
    forward = [True] * len(edges)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in ids:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(out[start]))]
        while stack:
            node, it = stack[-1]
            step = next(it, None)
            if step is None:
                state[node] = 2
                stack.pop()
                continue
            index, target = step
            if state.get(target) == 1:
                forward[index] = False
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(out[target])))
    return forward


def _ranks(nodes: Sequence[LayoutNode], edges: list[LayoutEdge], forward: list[bool],
           band_count: int) -> tuple[dict[str, int], bool]:
    """Each node's rank (its data-flow step), and whether the bands could be kept apart in their order.

    Longest path from the sources; then each band starts after the previous band's last rank (repeated until
    stable); sources move right next to their first successor; nodes without edges go where their kind would."""
    succ: dict[str, list[str]] = {n.id: [] for n in nodes}
    indegree = {n.id: 0 for n in nodes}
    for index, edge in enumerate(edges):
        a, b = (edge.source, edge.target) if forward[index] else (edge.target, edge.source)
        succ[a].append(b)
        indegree[b] += 1
    topo, queue = [], [n.id for n in nodes if indegree[n.id] == 0]
    while queue:
        node = queue.pop(0)
        topo.append(node)
        for b in succ[node]:
            indegree[b] -= 1
            if indegree[b] == 0:
                queue.append(b)
    band_of = {n.id: n.band for n in nodes}
    floor: dict[str, int] = {}

    def longest() -> dict[str, int]:
        rank = {n: floor.get(n, 0) for n in topo}
        for node in topo:
            for b in succ[node]:
                rank[b] = max(rank[b], rank[node] + 1)
        return rank

    rank, in_order = longest(), True
    for _ in range(2 * len(nodes) + 2):
        changed, last = False, -1
        for band in range(band_count):
            members = [n for n in topo if band_of[n] == band]
            if not members:
                continue
            for n in members:
                if rank[n] <= last:
                    floor[n], rank[n], changed = last + 1, last + 1, True
            last = max(rank[n] for n in members)
        if not changed:
            break
        rank = longest()
        if max(rank.values()) > len(nodes):  # the bands' order contradicts the edges: it cannot be kept
            break
    if changed:
        floor.clear()
        rank, in_order = longest(), False
    has_edge = {e.source for e in edges} | {e.target for e in edges}
    preds_of: dict[str, list[str]] = {n.id: [] for n in nodes}
    for a, bs in succ.items():
        for b in bs:
            preds_of[b].append(a)
    for node in reversed(topo):  # a source sits just before its nearest successor (within its band's floor)
        if not preds_of[node] and succ[node] and band_of[node] is None:
            rank[node] = max(rank[node], min(rank[b] for b in succ[node]) - 1)
    top = max((rank[n] for n in has_edge), default=0)
    widest = max((n.column for n in nodes), default=0) or 1
    for n in nodes:
        if n.id not in has_edge:
            rank[n.id] = round(n.column / widest * top) if n.band is None else rank[n.id]
    return rank, in_order


def _band_spans(nodes: Sequence[LayoutNode], ranks: dict[str, int], band_count: int) -> dict[int, tuple[int, int]]:
    spans: dict[int, tuple[int, int]] = {}
    for n in nodes:
        if n.band is not None and n.band < band_count:
            lo, hi = spans.get(n.band, (ranks[n.id], ranks[n.id]))
            spans[n.band] = (min(lo, ranks[n.id]), max(hi, ranks[n.id]))
    return spans


def _band_columns(nodes: Sequence[LayoutNode], ranks: dict[str, int], band_count: int) -> dict[int, int]:
    """Column -> the band drawn over it."""
    return {column: band for band, (lo, hi) in _band_spans(nodes, ranks, band_count).items()
            for column in range(2 * lo, 2 * hi + 1)}


# -- order within the columns ------------------------------------------------------------------------------------


def _order(items: dict[object, _Item], columns: int, preds: dict, succs: dict, band_columns: dict[int, int],
           node_order: list[str]) -> list[list[object]]:
    """Barycentre sweeps, down and up; in a band's columns the boxes of other nodes go below the band's."""
    position = {key: index for index, key in enumerate(node_order)}
    order: list[list[object]] = [[] for _ in range(columns)]
    for key, item in items.items():
        order[item.rank].append(key)
    # A first order by depth-first visit from the sources, so a long edge's points follow its source.
    seen: dict[object, int] = {}
    for start in node_order:
        stack = [start]
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen[key] = len(seen)
            stack.extend(reversed(succs[key]))

    def foreign(key: object) -> bool:
        item = items[key]
        band = band_columns.get(item.rank)
        return band is not None and item.real and item.band != band

    for column in order:
        column.sort(key=lambda k: (foreign(k), seen.get(k, math.inf), position.get(k, 0)))

    def sweep(column: list[object], neighbours: dict, index: dict[object, int]) -> None:
        current = {k: i for i, k in enumerate(column)}

        def key(k: object) -> tuple:
            near = [index[m] for m in neighbours[k] if m in index]
            return (foreign(k), sum(near) / len(near) if near else current[k])

        column.sort(key=key)

    best, best_count = [list(c) for c in order], _crossings(order, succs)
    for step in range(SWEEPS):
        downward = step % 2 == 0
        sequence = range(1, columns) if downward else range(columns - 2, -1, -1)
        for c in sequence:
            other = order[c - 1] if downward else order[c + 1]
            sweep(order[c], preds if downward else succs, {k: i for i, k in enumerate(other)})
        count = _crossings(order, succs)
        if count < best_count:
            best, best_count = [list(c) for c in order], count
        if best_count == 0:
            break
    return best


def _crossings(order: list[list[object]], succs: dict) -> int:
    """Crossings between adjacent columns: inversions of the lower ends, counted with a Fenwick tree."""
    total = 0
    for upper, lower in zip(order, order[1:], strict=False):
        below = {k: i for i, k in enumerate(lower)}
        ends = sorted((i, below[b]) for i, a in enumerate(upper) for b in succs[a] if b in below)
        tree = [0] * (len(lower) + 1)
        for seen, (_, j) in enumerate(ends):
            # edges already seen whose lower end is after j cross this one
            k, not_after = j + 1, 0
            while k > 0:
                not_after += tree[k]
                k -= k & -k
            total += seen - not_after
            k = j + 1
            while k <= len(lower):
                tree[k] += 1
                k += k & -k
    return total


# -- coordinates -------------------------------------------------------------------------------------------------


def _assign_y(order: list[list[object]], items: dict[object, _Item], preds: dict, succs: dict,
              band_columns: dict[int, int], top: float) -> None:
    """Each item's centre: as near the mean of its neighbours' as the column's spacing allows (least squares
    under the order, by pool-adjacent-violators), sweeping down and up; then other nodes below the bands."""
    for column in order:
        y = top
        for key in column:
            item = items[key]
            item.y = y + item.height / 2
            y += item.height + DUMMY_SPACING

    def line(key: object) -> float:
        return items[key].y + items[key].line

    def gap(a: _Item, b: _Item) -> float:
        room = NODE_SPACING if a.real or b.real else DUMMY_SPACING
        return a.height / 2 + b.height / 2 + room

    def place(column: list[object], neighbours: list[dict]) -> None:
        if not column:
            return
        wanted = []
        for key in column:
            near = [line(m) for links in neighbours for m in links[key]]
            wanted.append(sum(near) / len(near) - items[key].line if near else items[key].y)
        offsets = [0.0]
        for a, b in zip(column, column[1:], strict=False):
            offsets.append(offsets[-1] + gap(items[a], items[b]))
        for key, y in zip(column, _isotonic([w - o for w, o in zip(wanted, offsets, strict=True)]), strict=True):
            items[key].y = y
        for key, offset in zip(column, offsets, strict=True):
            items[key].y += offset

    for step in range(6):
        sequence = range(1, len(order)) if step % 2 == 0 else range(len(order) - 2, -1, -1)
        for c in sequence:
            place(order[c], [preds] if step % 2 == 0 else [succs])
    for column in order:
        place(column, [preds, succs])
    shift = top - min((items[k].y - items[k].height / 2 for c in order for k in c), default=top)
    for item in items.values():
        item.y += shift
    # Boxes of other nodes in a band's columns go below the band's own.
    bottoms: dict[int, float] = {}
    for column in order:
        for key in column:
            item = items[key]
            if item.real and item.band is not None and band_columns.get(item.rank) == item.band:
                bottoms[item.band] = max(bottoms.get(item.band, -math.inf), item.y + item.height / 2)
    for rank, column in enumerate(order):
        band = band_columns.get(rank)
        if band is None or band not in bottoms:
            continue
        floor = None
        for key in column:
            item = items[key]
            if item.real and item.band != band and floor is None:
                floor = bottoms[band] + 2 * BAND_PAD + NODE_SPACING
            if floor is not None and item.y - item.height / 2 < floor:
                item.y = floor + item.height / 2
            if floor is not None:
                floor = item.y + item.height / 2 + DUMMY_SPACING


def _isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence nearest to `values` (least squares): pool adjacent violators."""
    blocks: list[list[float]] = []  # [mean, size]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, n2), (m1, n1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    out: list[float] = []
    for mean, size in blocks:
        out += [mean] * int(size)
    return out


def _ports(order: list[list[object]], items: dict[object, _Item], succs: dict, preds: dict,
           boxes: dict[str, Rect]) -> dict[tuple[object, object], float]:
    """(item, neighbour) -> the y where their edge leaves or enters the item: a node's edges are spread along
    its side in the order of their other ends, so they do not start on top of each other."""
    ports: dict[tuple[object, object], float] = {}
    for column in order:
        for key in column:
            item = items[key]
            for links in (succs, preds):
                others = sorted(links[key], key=lambda m: items[m].y + items[m].line)
                for index, other in enumerate(others):
                    if item.real:
                        box = boxes[key]
                        ports[(key, other)] = box.top + box.height * (index + 1) / (len(others) + 1)
                    else:
                        ports[(key, other)] = item.y + item.line
    return ports


def _dedupe(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    out: list[tuple[float, float]] = []
    for p in points:
        if not out or (abs(out[-1][0] - p[0]) > 1e-9 or abs(out[-1][1] - p[1]) > 1e-9):
            out.append(p)
    return tuple(out)


# -- checks (used by the tests, and cheap enough to assert in a view) ------------------------------------------


def segment_hits_rect(p: tuple[float, float], q: tuple[float, float], rect: Rect, inset: float = 0.5) -> bool:
    """Whether the segment p-q passes through the rectangle's inside (shrunk by `inset`: touching is not
    passing through). Liang-Barsky clipping."""
    x0, y0, x1, y1 = rect.left + inset, rect.top + inset, rect.right - inset, rect.bottom - inset
    if x0 >= x1 or y0 >= y1:
        return False
    dx, dy = q[0] - p[0], q[1] - p[1]
    lo, hi = 0.0, 1.0
    for step, distance in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if step == 0:
            if distance < 0:
                return False
            continue
        t = distance / step
        if step < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo > hi:
            return False
    return True


def rects_overlap(a: Rect, b: Rect) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom
