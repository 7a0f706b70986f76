"""Numba kernels for exact Hamming-radius search over 64-bit hashes (the fast paths behind ``dedup.index``).

Why compiled: the numpy versions materialise a distance matrix (brute force) or gather candidates by fancy indexing
(MIH), so they are memory-bound; these loops keep a query in a register, count bits with a SWAR popcount that LLVM
turns into ``popcnt``/vector code, and run in parallel over queries. Every search runs in two passes over the same
loop, count then fill, so the output is allocated once at its exact size and needs no per-thread lists.
``cache=True`` keeps the compiled code on disk, so only the first run on a machine pays the compile time.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U4 = np.uint64(4)
_U56 = np.uint64(56)


@nb.njit(inline="always", cache=True)
def popcount64(x: np.uint64) -> np.uint64:
    """Set bits of a uint64 (SWAR: pairs, nibbles, bytes, then one multiply sums the bytes)."""
    x = x - ((x >> _U1) & _M1)
    x = (x & _M2) + ((x >> _U2) & _M2)
    x = (x + (x >> _U4)) & _M4
    return (x * _H01) >> _U56


@nb.njit(cache=True)
def popcount_array(x: np.ndarray) -> np.ndarray:
    """``popcount64`` over an array (exposed so tests can compare it with ``np.bitwise_count``)."""
    out = np.empty(len(x), np.int8)
    for i in range(len(x)):
        out[i] = np.int8(popcount64(x[i]))
    return out


@nb.njit(parallel=True, cache=True)
def _brute_count(queries, hashes, radius):
    """Matches per query: a branch-free loop that LLVM vectorises (``vpopcntq`` where the CPU has it)."""
    r = np.uint64(radius)
    counts = np.zeros(len(queries), np.int64)
    for q in nb.prange(len(queries)):
        x = queries[q]
        c = 0
        for i in range(len(hashes)):
            c += popcount64(x ^ hashes[i]) <= r
        counts[q] = c
    return counts


_BLOCK = 256


@nb.njit(parallel=True, cache=True)
def _brute_fill(queries, hashes, radius, counts, starts, out_item, out_dist):
    """Write each query's matches at its slot; blocks without a match are skipped by the vectorised count."""
    r = np.uint64(radius)
    n = len(hashes)
    for q in nb.prange(len(queries)):
        if counts[q] == 0:
            continue
        x = queries[q]
        k = starts[q]
        end = k + counts[q]
        for b0 in range(0, n, _BLOCK):
            b1 = min(b0 + _BLOCK, n)
            c = 0
            for i in range(b0, b1):
                c += popcount64(x ^ hashes[i]) <= r
            if c == 0:
                continue
            for i in range(b0, b1):
                d = popcount64(x ^ hashes[i])
                if d <= r:
                    out_item[k] = i
                    out_dist[k] = np.int8(d)
                    k += 1
            if k == end:
                break


def _gather(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Output slots from per-query counts: start offsets, query ids, and empty item/distance arrays."""
    starts = np.zeros(len(counts), np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    total = int(counts.sum())
    query = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return starts, query, np.empty(total, np.int64), np.empty(total, np.int8)


def brute_search(
    queries: np.ndarray, hashes: np.ndarray, radius: int, cap: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """All (query, item, distance) with distance <= radius, ordered by query then item, and how many matches were
    left out: with ``cap`` > 0 each query keeps its first ``cap`` matches (in item order), so the output is bounded
    by ``cap`` per query whatever the data."""
    queries = np.ascontiguousarray(queries, dtype=np.uint64)
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    empty = np.zeros(0, np.int64)
    if len(queries) == 0 or len(hashes) == 0 or radius < 0:
        return empty, empty.copy(), np.zeros(0, np.int8), 0
    counts = _brute_count(queries, hashes, radius)
    dropped = 0
    if cap > 0:
        dropped = int(np.maximum(counts - cap, 0).sum())
        counts = np.minimum(counts, cap)
    starts, query, item, dist = _gather(counts)
    _brute_fill(queries, hashes, radius, counts, starts, item, dist)
    return query, item, dist, dropped


@nb.njit(cache=True)
def bucket_table(keys: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR buckets by counting sort: ``ids[offsets[k]:offsets[k + 1]]`` are the items whose key is ``k``, ascending."""
    offsets = np.zeros((1 << width) + 1, np.int32)
    for i in range(len(keys)):
        offsets[keys[i] + 1] += 1
    for b in range(1 << width):
        offsets[b + 1] += offsets[b]
    fill = offsets[:-1].copy()
    ids = np.empty(len(keys), np.int32)
    for i in range(len(keys)):
        k = keys[i]
        ids[fill[k]] = i
        fill[k] += 1
    return offsets, ids


@nb.njit(cache=True)
def _mih_rows(
    lo,
    hi,
    counts,
    queries,
    order,  # query ids sorted by this chunk's key: neighbouring queries probe neighbouring buckets (cache reuse)
    ch,
    offsets,  # flat: chunk c's table starts at table_start[c]
    table_start,
    ids,  # (m, n) item ids in bucket order
    vals,  # (m, n) item hashes in bucket order (sequential candidate checks)
    shifts,
    lowmasks,
    chunk_radius,
    probes,
    radius,
    starts,
    out_query,
    out_item,
    out_dist,
    limit,  # write at most this many matches per query from starts[p] on (0: count only)
):
    """Positions ``lo:hi`` of ``order``: probe, check on 64 bits, write up to ``limit`` matches, count them all."""
    r = np.uint64(radius)
    base = table_start[ch]
    for p in range(lo, hi):
        q = order[p]
        x = queries[q]
        k = starts[p] if limit > 0 else 0
        c = 0
        key0 = (x >> shifts[ch]) & lowmasks[ch]
        for probe in probes:
            key = np.int64(key0 ^ probe) + base
            for j in range(offsets[key], offsets[key + 1]):
                xor = x ^ vals[ch, j]
                d = popcount64(xor)
                if d > r:
                    continue
                # report the pair only from the first chunk within its chunk radius: no duplicates, no set
                first = True
                for e in range(ch):
                    if chunk_radius[e] >= 0 and popcount64((xor >> shifts[e]) & lowmasks[e]) <= chunk_radius[e]:
                        first = False
                        break
                if not first:
                    continue
                if c < limit:
                    out_query[k + c] = q
                    out_item[k + c] = ids[ch, j]
                    out_dist[k + c] = np.int8(d)
                c += 1
        counts[p] = c


_ROWS = 1024


@nb.njit(parallel=True, cache=True)
def _mih_parallel(
    queries,
    order,
    ch,
    offsets,
    table_start,
    ids,
    vals,
    shifts,
    lowmasks,
    chunk_radius,
    probes,
    radius,
    starts,
    out_query,
    out_item,
    out_dist,
    limit,
):
    counts = np.zeros(len(order), np.int64)
    for b in nb.prange((len(order) + _ROWS - 1) // _ROWS):
        lo = b * _ROWS
        _mih_rows(
            lo,
            min(lo + _ROWS, len(order)),
            counts,
            queries,
            order,
            ch,
            offsets,
            table_start,
            ids,
            vals,
            shifts,
            lowmasks,
            chunk_radius,
            probes,
            radius,
            starts,
            out_query,
            out_item,
            out_dist,
            limit,
        )
    return counts


def _mih_chunk_pass(
    queries,
    order,
    ch,
    offsets,
    table_start,
    ids,
    vals,
    shifts,
    lowmasks,
    chunk_radius,
    probes,
    radius,
    starts,
    out_query,
    out_item,
    out_dist,
    limit,
):
    """Per-query match counts of one chunk's probes; small batches run serially (a parallel launch costs ~1 ms)."""
    counts = np.zeros(len(order), np.int64)
    if len(order) < 4 * _ROWS:
        _mih_rows(
            0,
            len(order),
            counts,
            queries,
            order,
            ch,
            offsets,
            table_start,
            ids,
            vals,
            shifts,
            lowmasks,
            chunk_radius,
            probes,
            radius,
            starts,
            out_query,
            out_item,
            out_dist,
            limit,
        )
        return counts
    return _mih_parallel(
        queries,
        order,
        ch,
        offsets,
        table_start,
        ids,
        vals,
        shifts,
        lowmasks,
        chunk_radius,
        probes,
        radius,
        starts,
        out_query,
        out_item,
        out_dist,
        limit,
    )


def _chunk_keys(hashes: np.ndarray, shift: np.uint64, lowmask: np.uint64) -> np.ndarray:
    return ((hashes >> shift) & lowmask).astype(np.int64)


SLOTS = 2
"""Output slots per query in the single MIH pass (overflowing queries are searched again with exact slots)."""


def key_order(keys: np.ndarray, width: int) -> np.ndarray:
    """Positions of ``keys`` in ascending key order: counting sort when the keys are dense, else a comparison sort."""
    if len(keys) >= (1 << width) // 8:
        return bucket_table(keys, width)[1]
    return np.argsort(keys, kind="stable").astype(np.int32)


class MIHTables:
    """The bucket tables of one hash set, split into chunks ``(shift, width)`` with per-chunk probe radii."""

    def __init__(self, hashes: np.ndarray, bounds: list[tuple[int, int]]) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        if len(self.hashes) >= 2**31:
            raise ValueError("MIHTables: at most 2**31 - 1 hashes (int32 bucket ids)")
        self.bounds = bounds
        m, n = len(bounds), len(self.hashes)
        self.shifts = np.array([s for s, _ in bounds], np.uint64)
        self.lowmasks = np.array([(1 << w) - 1 for _, w in bounds], np.uint64)
        self.table_start = np.zeros(m, np.int64)
        tables, self.ids, self.vals = [], np.empty((m, n), np.int32), np.empty((m, n), np.uint64)
        pos = 0
        for c, (shift, width) in enumerate(bounds):
            offsets, ids = bucket_table(_chunk_keys(self.hashes, np.uint64(shift), self.lowmasks[c]), width)
            # the flat table holds every chunk's offsets one after the other; the last entry of each is its end
            self.table_start[c] = pos
            tables.append(offsets)
            pos += len(offsets)
            self.ids[c] = ids
            self.vals[c] = self.hashes[ids]
        self.offsets = np.concatenate(tables)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.ids.nbytes + self.vals.nbytes

    def _passes(self, queries: np.ndarray, radius: int, chunk_radius: list[int], probes: list[np.ndarray]):
        """Per probed chunk: the query order, and the arguments of ``_mih_chunk_pass`` up to the output slots."""
        radii = np.array(chunk_radius, np.int64)
        for ch, ((shift, width), s) in enumerate(zip(self.bounds, chunk_radius, strict=True)):
            if s < 0:
                continue
            order = key_order(_chunk_keys(queries, np.uint64(shift), self.lowmasks[ch]), width)
            yield (queries, order, ch, self.offsets, self.table_start, self.ids, self.vals, self.shifts,
                   self.lowmasks, radii, np.asarray(probes[ch], np.uint64), radius)  # fmt: skip

    def count(self, queries: np.ndarray, radius: int, chunk_radius: list[int], probes: list[np.ndarray]) -> int:
        """Pairs within ``radius`` (with ``radius`` 64: the distinct candidates that ``chunk_radius`` probes)."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if len(queries) == 0 or len(self.hashes) == 0 or radius < 0:
            return 0
        e, e8 = np.zeros(0, np.int64), np.zeros(0, np.int8)
        return sum(
            int(_mih_chunk_pass(*a, e, e, e, e8, 0).sum()) for a in self._passes(queries, radius, chunk_radius, probes)
        )

    def search(
        self, queries: np.ndarray, radius: int, chunk_radius: list[int], probes: list[np.ndarray], cap: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(query, item, distance) for every pair within ``radius``; pigeonhole over ``chunk_radius`` makes it exact.
        With ``cap`` > 0 a query keeps at most ``cap`` matches per chunk (the first found); the last value is how
        many were left out."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        empty = np.zeros(0, np.int64)
        if len(queries) == 0 or len(self.hashes) == 0 or radius < 0:
            return empty, empty.copy(), np.zeros(0, np.int8), 0
        parts = []
        slots_per_query = SLOTS
        dropped = 0
        for args in self._passes(queries, radius, chunk_radius, probes):
            # one pass with ``SLOTS`` slots per query (most queries match 0-2 items); the rare queries with more
            # matches are run again with exact slots (at most ``cap``), instead of running every query twice
            n = len(args[1])
            slots = (np.empty(n * slots_per_query, np.int64), np.empty(n * slots_per_query, np.int64),
                     np.empty(n * slots_per_query, np.int8))  # fmt: skip
            counts = _mih_chunk_pass(*args, np.arange(n, dtype=np.int64) * slots_per_query, *slots, slots_per_query)
            keep = (
                (np.arange(slots_per_query)[None, :] < counts[:, None]) & (counts <= slots_per_query)[:, None]
            ).ravel()
            parts.append(tuple(a[keep] for a in slots))
            over = counts > slots_per_query
            if over.any():
                wanted = counts[over]
                if cap > 0:
                    dropped += int(np.maximum(wanted - cap, 0).sum())
                    wanted = np.minimum(wanted, cap)
                starts, *exact = _gather(wanted)
                limit = cap if cap > 0 else np.iinfo(np.int64).max
                _mih_chunk_pass(args[0], args[1][over], *args[2:], starts, *exact, limit)
                parts.append(tuple(exact))
        if not parts:
            return empty, empty.copy(), np.zeros(0, np.int8), dropped
        return (*(np.concatenate(f) for f in zip(*parts, strict=True)), dropped)  # type: ignore[return-value]


@nb.njit(cache=True)
def nearest_words(descriptors: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Index of the nearest word (Hamming distance; the first one on a tie, as OpenCV's ``BFMatcher.match``) for
    each (n, 4) uint64 binary descriptor among (K, 4) uint64 words. Replaces ``BFMatcher`` in the bag of words:
    the same answers, several times faster (no DMatch objects, one popcount per 64 bits). The distances to all
    words are computed first in a branch-free loop over word columns, which LLVM vectorises, then scanned: 1.45x
    the loop that kept the best word as it went."""
    n, k = descriptors.shape[0], words.shape[0]
    out = np.empty(n, np.int64)
    dist = np.empty(k, np.uint64)
    w0, w1, w2, w3 = words[:, 0].copy(), words[:, 1].copy(), words[:, 2].copy(), words[:, 3].copy()
    for i in range(n):
        d0, d1, d2, d3 = descriptors[i, 0], descriptors[i, 1], descriptors[i, 2], descriptors[i, 3]
        for j in range(k):
            dist[j] = (popcount64(d0 ^ w0[j]) + popcount64(d1 ^ w1[j]) + popcount64(d2 ^ w2[j])
                       + popcount64(d3 ^ w3[j]))  # fmt: skip
        best = dist[0]
        arg = 0
        for j in range(1, k):
            if dist[j] < best:
                best = dist[j]
                arg = j
        out[i] = arg
    return out


@nb.njit(cache=True)
def batch_starts(pairs: np.ndarray, max_pairs: int, max_rows: int, n_rows: int) -> np.ndarray:
    """Where each batch starts in ``pairs`` ((p, 2) row positions, in the order they will be cut) so that a batch
    holds at most ``max_pairs`` pairs and touches at most ``max_rows`` distinct rows (a single pair always fits)."""
    seen = np.full(n_rows, -1, np.int64)  # the last batch that touched each row
    starts = np.empty(len(pairs) + 1, np.int64)
    starts[0] = 0
    batches, batch, rows, count = 1, 0, 0, 0
    for i in range(len(pairs)):
        a, b = pairs[i, 0], pairs[i, 1]
        new = (seen[a] != batch) + (seen[b] != batch and b != a)
        if count > 0 and (count >= max_pairs or rows + new > max_rows):
            batch += 1
            starts[batches] = i
            batches += 1
            rows, count = 0, 0
        for r in (a, b):
            if seen[r] != batch:
                seen[r] = batch
                rows += 1
        count += 1
    return starts[:batches].copy()


@nb.njit(cache=True)
def top_local_peaks(surfaces: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``count`` highest local maxima of each (h, w) cyclic surface of a stack: pixels not below any pixel of
    their 5 x 5 neighbourhood (wrapping around), as ``register.phase_peaks`` finds them with a dilation.
    Returns (row, column, height), each (m, count); height -inf where a surface has fewer maxima."""
    m, h, w = surfaces.shape
    py = np.zeros((m, count), np.int64)
    px = np.zeros((m, count), np.int64)
    height = np.full((m, count), -np.inf, np.float64)
    for s in range(m):
        for y in range(h):
            for x in range(w):
                v = surfaces[s, y, x]
                if v <= height[s, count - 1]:
                    continue
                local = True
                for dy in range(-2, 3):
                    yy = (y + dy) % h
                    for dx in range(-2, 3):
                        if surfaces[s, yy, (x + dx) % w] > v:
                            local = False
                            break
                    if not local:
                        break
                if not local:
                    continue
                k = count - 1
                while k > 0 and height[s, k - 1] < v:
                    height[s, k] = height[s, k - 1]
                    py[s, k] = py[s, k - 1]
                    px[s, k] = px[s, k - 1]
                    k -= 1
                height[s, k] = v
                py[s, k] = y
                px[s, k] = x
    return py, px, height


@nb.njit(cache=True)
def masked_correlations(a, mask_a, b, mask_b, rows_b, min_pixels):
    """Pearson correlation of each ``a[k]`` with ``b[rows_b[k]]`` over the pixels where both masks are set (sums
    in float64), -1 below ``max(min_pixels[k], 16)`` such pixels or without variance: ``register.correlation``
    over a stack, without gathering ``b``."""
    m = a.shape[0]
    size = a.shape[1] * a.shape[2]
    out = np.empty(m, np.float64)
    for k in range(m):
        fa, ma = a[k].reshape(size), mask_a[k].reshape(size)
        r = rows_b[k]
        fb, mb = b[r].reshape(size), mask_b[r].reshape(size)
        count = 0.0
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        for i in range(size):
            wgt = np.float64(ma[i]) * np.float64(mb[i])
            if wgt != 0.0:
                x = np.float64(fa[i])
                y = np.float64(fb[i])
                count += wgt
                sx += wgt * x
                sy += wgt * y
                sxx += wgt * x * x
                syy += wgt * y * y
                sxy += wgt * x * y
        if count < max(min_pixels[k], 16):
            out[k] = -1.0
            continue
        cov = sxy - sx * sy / count
        vx = sxx - sx * sx / count
        vy = syy - sy * sy / count
        out[k] = cov / np.sqrt(vx * vy) if vx > 0 and vy > 0 else -1.0
    return out


@nb.njit(cache=True, inline="always")
def _is_flat(rgb: np.ndarray, y: int, x: int, h: int, w: int) -> bool:
    """Every pixel of the 3 x 3 window (clipped to the image) equals the centre in every channel: what
    ``dilate - erode == 0`` over the window says, OpenCV's morphology ignoring pixels outside the image."""
    for yy in range(max(0, y - 1), min(h, y + 2)):
        for xx in range(max(0, x - 1), min(w, x + 2)):
            for c in range(3):
                if rgb[yy, xx, c] != rgb[y, x, c]:
                    return False
    return True


@nb.njit(cache=True, inline="always")
def _is_extreme(rgb: np.ndarray, y: int, x: int, black_max: int, white_min: int) -> bool:
    r, g, b = rgb[y, x, 0], rgb[y, x, 1], rgb[y, x, 2]
    return max(r, g, b) <= black_max or min(r, g, b) >= white_min


@nb.njit(cache=True)
def _grow(rgb: np.ndarray, y0: int, x0: int, flat: bool, seen: np.ndarray, flat_state: np.ndarray,
          queue: np.ndarray, black_max: int, white_min: int) -> int:  # fmt: skip
    """The 4-connected component of extreme (``flat`` False) or flat pixels holding (y0, x0), breadth first from
    there: its pixels (y * w + x) in ``queue[:count]``; returns count. ``seen`` marks the pixels visited;
    ``flat_state`` caches flatness (0 unknown, 1 flat, 2 not)."""
    h, w = seen.shape
    seen[y0, x0] = True
    queue[0] = y0 * w + x0
    head, count = 0, 1
    while head < count:
        y, x = divmod(queue[head], w)
        head += 1
        for k in range(4):
            ny = y + (1 if k == 0 else -1 if k == 1 else 0)
            nx = x + (1 if k == 2 else -1 if k == 3 else 0)
            if ny < 0 or ny >= h or nx < 0 or nx >= w or seen[ny, nx]:
                continue
            if flat:
                if flat_state[ny, nx] == 0:
                    flat_state[ny, nx] = 1 if _is_flat(rgb, ny, nx, h, w) else 2
                member = flat_state[ny, nx] == 1
            else:
                member = _is_extreme(rgb, ny, nx, black_max, white_min)
            if member:
                seen[ny, nx] = True
                queue[count] = ny * w + nx
                count += 1
    return count


@nb.njit(cache=True)
def fill_pixels(rgb: np.ndarray, black_max: int, white_min: int, flat_range: int, min_flat_area: int) -> np.ndarray:
    """``fill.fill_mask``'s mask on an image already at its working size, visiting only the components that touch
    the border (grown from the border pixels) instead of labelling every component of the image: a smooth cell's
    background holds thousands of tiny flat components that never touch it. The same mask as the labelling code
    (tested): extreme components touching the border, and flat ones of at least ``min_flat_area`` pixels spanning at
    most ``flat_range`` levels per channel (a flat pixel equals its whole 3 x 3 window, so a flat component is one
    colour and always passes; the test is kept as the definition states it)."""
    h, w = rgb.shape[0], rgb.shape[1]
    out = np.zeros((h, w), np.bool_)
    seen_extreme = np.zeros((h, w), np.bool_)
    seen_flat = np.zeros((h, w), np.bool_)
    flat_state = np.zeros((h, w), np.uint8)
    queue = np.empty(h * w, np.int64)
    perimeter = 2 * (h + w)
    for k in range(perimeter):
        if k < w:
            y, x = 0, k
        elif k < 2 * w:
            y, x = h - 1, k - w
        elif k < 2 * w + h:
            y, x = k - 2 * w, 0
        else:
            y, x = k - 2 * w - h, w - 1
        if not seen_extreme[y, x] and _is_extreme(rgb, y, x, black_max, white_min):
            count = _grow(rgb, y, x, False, seen_extreme, flat_state, queue, black_max, white_min)
            for i in range(count):
                py, px = divmod(queue[i], w)
                out[py, px] = True
        if seen_flat[y, x]:
            continue
        if flat_state[y, x] == 0:
            flat_state[y, x] = 1 if _is_flat(rgb, y, x, h, w) else 2
        if flat_state[y, x] != 1:
            continue
        count = _grow(rgb, y, x, True, seen_flat, flat_state, queue, black_max, white_min)
        if count < min_flat_area:
            continue
        keep = True
        for c in range(3):
            low, high = 255, 0
            for i in range(count):
                py, px = divmod(queue[i], w)
                v = rgb[py, px, c]
                low = min(low, v)
                high = max(high, v)
            if high - low > flat_range:
                keep = False
        if keep:
            for i in range(count):
                py, px = divmod(queue[i], w)
                out[py, px] = True
    return out
