"""MkDocs hook: the pictures of the layouts page (docs/layouts.md), drawn at build time.

Each picture is computed by refattn while the site builds, not drawn by hand:

- ``img/layouts/packed.svg``: which keys each packed query sees, read from
  :func:`refattn.compat.flash_attn.flash_attn_varlen_func` with one-hot values (the
  output row of a query is its weights over keys);
- ``img/layouts/paged.svg``: a page pool, a block table and the keys it gathers, read
  from the same function run on a paged cache whose values name their own page and slot;
- ``img/layouts/rotary.svg``: which features :func:`refattn.rotary.apply_rotary` turns
  together in each convention, found by rotating each unit vector a quarter turn.

Plain SVG, no script, no web font: the site reads offline.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from refattn.compat.flash_attn import flash_attn_varlen_func
from refattn.rotary import apply_rotary

COLOURS = ("#3f51b5", "#e65100", "#2e7d32", "#8e24aa", "#00838f")
GREY = "#e0e0e0"


def _svg(width: int, height: int, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
    )
    return "\n".join([head, *body, "</svg>"]) + "\n"


def _text(x: float, y: float, s: str, **attrs: Any) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:g}" y="{y:g}"{extra}>{html.escape(s)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str = "") -> str:
    tip = f"<title>{html.escape(title)}</title>" if title else ""
    return (
        f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" fill="{fill}" '
        f'stroke="#fff">{tip}</rect>'
    )


def packed_weights(lens_q: list[int], lens_k: list[int], causal: bool) -> np.ndarray:
    """Weights ``(total_q, total_k)`` of a packed batch, read from flash_attn_varlen_func."""
    total_q, total_k = sum(lens_q), sum(lens_k)
    cu_q = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int32)
    q = np.zeros((total_q, 1, total_k))  # equal logits: weights are uniform over seen keys
    k = np.zeros((total_k, 1, total_k))
    v = np.eye(total_k)[:, None, :]  # value j is the one-hot e_j
    out = flash_attn_varlen_func(
        q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal
    )  # (total_q, 1, total_k)
    weights: np.ndarray = out[:, 0, :]
    return weights


def _packed_panel(
    x0: int, y0: int, lens_q: list[int], lens_k: list[int], title: str
) -> tuple[list[str], int, int]:
    weights = packed_weights(lens_q, lens_k, causal=True)
    cell = 22
    owner_q = np.repeat(np.arange(len(lens_q)), lens_q)
    body = [
        _text(x0, y0 + 12, title, font_weight="bold"),
        _text(x0 + 30, y0 + 30, "packed keys →", fill="#555"),
    ]
    top, left = y0 + 40, x0 + 30
    for i in range(weights.shape[0]):
        body.append(_text(x0, top + i * cell + 15, f"q{i}", fill="#555"))
        for j in range(weights.shape[1]):
            seen = weights[i, j] > 0
            fill = COLOURS[owner_q[i] % len(COLOURS)] if seen else GREY
            tip = f"query {i}, key {j}: " + (f"weight {weights[i, j]:.3g}" if seen else "masked")
            body.append(_rect(left + j * cell, top + i * cell, cell, cell, fill, tip))
    # sequence boundaries, as the block-diagonal structure
    for b, edge in enumerate(np.cumsum(lens_q)[:-1]):
        y = top + int(edge) * cell
        body.append(
            f'<line x1="{left}" y1="{y}" x2="{left + sum(lens_k) * cell}" y2="{y}" '
            f'stroke="#000" stroke-dasharray="3,2"><title>end of sequence {b}</title></line>'
        )
    for edge in np.cumsum(lens_k)[:-1]:
        x = left + int(edge) * cell
        body.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + sum(lens_q) * cell}" '
                    f'stroke="#000" stroke-dasharray="3,2"/>')  # fmt: skip
    legend_y = top + sum(lens_q) * cell + 18
    cu_q = [0, *np.cumsum(lens_q).tolist()]
    cu_k = [0, *np.cumsum(lens_k).tolist()]
    body.append(_text(x0, legend_y, f"cu_seqlens_q = {cu_q}", fill="#333"))
    body.append(_text(x0, legend_y + 15, f"cu_seqlens_k = {cu_k}", fill="#333"))
    for b, (nq, nk) in enumerate(zip(lens_q, lens_k, strict=True)):
        colour = COLOURS[b % len(COLOURS)]
        body.append(_rect(x0, legend_y + 24 + b * 16, 12, 12, colour))
        body.append(_text(x0 + 18, legend_y + 34 + b * 16, f"sequence {b}: sq={nq}, sk={nk}"))
    width = max(30 + sum(lens_k) * cell, 230)
    height = legend_y + 30 + len(lens_q) * 16 - y0
    return body, width, height


def packed_svg() -> str:
    """Two packed batches with causal=True: self-attention, and queries shorter than keys."""
    left, w1, h1 = _packed_panel(0, 0, [3, 1, 0, 4], [3, 1, 0, 4], "lengths 3, 1, 0, 4")
    right, w2, h2 = _packed_panel(
        w1 + 40, 0, [2, 1, 2], [4, 2, 3], "queries after cached keys"
    )  # fmt: skip
    return _svg(w1 + 40 + w2 + 10, max(h1, h2) + 10, left + right)


def paged_svg() -> str:
    """A page pool, its block table and the keys flash_attn_varlen_func gathers from it."""
    page, lens = 2, [5, 3]
    table = np.array([[4, 1, 6], [0, 3, -1]], np.int32)  # -1: never read (3 keys, 2 pages)
    num_blocks = 7
    # value of (page n, slot s) encodes n * page + s, so the output reads back the gather
    ids = np.arange(num_blocks * page, dtype=np.float64).reshape(num_blocks, page)
    v = np.zeros((num_blocks, page, 1, num_blocks * page))
    for n in range(num_blocks):
        for s in range(page):
            v[n, s, 0, int(ids[n, s])] = 1.0
    gathered: list[list[int]] = []
    for b, length in enumerate(lens):
        one = flash_attn_varlen_func(
            np.zeros((length, 1, v.shape[-1])), np.zeros_like(v), v,
            np.array([0, length], np.int32), np.array([0, length], np.int32), length, length,
            causal=True, block_table=table[b : b + 1],
        )  # fmt: skip
        # causal: query p sees keys 0..p, so key p is what row p sees and row p - 1 does not
        seen = [set(np.flatnonzero(one[p, 0] > 0).tolist()) for p in range(length)]
        gathered.append([min(seen[p] - (seen[p - 1] if p else set())) for p in range(length)])
    cell, body = 26, []
    body.append(_text(0, 12, "page pool k_cache[n, slot]", font_weight="bold"))
    owner = {}
    for b, row in enumerate(gathered):
        for p, slot_id in enumerate(row):
            owner[slot_id] = (b, p)
    for n in range(num_blocks):
        y = 24 + n * cell
        body.append(_text(0, y + 17, f"page {n}", fill="#555"))
        for s in range(page):
            slot_id = n * page + s
            b, p = owner.get(slot_id, (-1, -1))
            fill = COLOURS[b] if b >= 0 else GREY
            label = f"s{b} k{p}" if b >= 0 else "free"
            body.append(_rect(50 + s * 48, y, 48, cell, fill, f"page {n}, slot {s}: {label}"))
            body.append(_text(54 + s * 48, y + 17, label, fill="#fff" if b >= 0 else "#777"))
    x_table = 190
    body.append(_text(x_table, 12, "block_table", font_weight="bold"))
    for b in range(len(lens)):
        y = 24 + b * cell
        body.append(_text(x_table, y + 17, f"seq {b}", fill="#555"))
        for c, entry in enumerate(table[b]):
            used = c * page < lens[b]
            fill = COLOURS[b] if used else GREY
            body.append(_rect(x_table + 40 + c * 30, y, 30, cell, fill, f"block_table[{b}, {c}]"))
            colour = "#fff" if used else "#777"
            body.append(_text(x_table + 50 + c * 30, y + 17, str(int(entry)), fill=colour))
    x_keys = 370
    body.append(_text(x_keys, 12, "keys each sequence attends to", font_weight="bold"))
    for b, row in enumerate(gathered):
        y = 24 + b * (cell + 22)
        body.append(_text(x_keys, y + 17, f"seq {b}", fill="#555"))
        for p, slot_id in enumerate(row):
            n, s = divmod(slot_id, page)
            body.append(_rect(x_keys + 40 + p * 44, y, 44, cell, COLOURS[b], f"key {p}"))
            body.append(_text(x_keys + 44 + p * 44, y + 17, f"{n}·{s}", fill="#fff"))
        caption = "page·slot of keys 0, 1, 2, ..."
        body.append(_text(x_keys + 40, y + cell + 13, caption, fill="#777"))
    note = "key p of sequence b = k_cache[block_table[b, p // page], p % page], page = 2"
    body.append(_text(0, 24 + num_blocks * cell + 20, note, fill="#333"))
    return _svg(640, 24 + num_blocks * cell + 30, body)


def rotary_pairs(dim: int, rotary_dim: int, interleaved: bool) -> list[int]:
    """Partner of each feature under a quarter turn; a feature left alone is its own."""
    half = rotary_dim // 2
    cos = np.array([np.ones(half), np.zeros(half)])  # position 1: angle pi/2 for every pair
    sin = np.array([np.zeros(half), np.ones(half)])
    partners = []
    for a in range(dim):
        e = np.zeros((1, dim))
        e[0, a] = 1.0
        y = apply_rotary(e, cos, sin, interleaved=interleaved, positions=[1])
        partners.append(int(np.argmax(np.abs(y[0]))))
    return partners


def rotary_svg() -> str:
    """Features turned together, D = 8 with R = 6: half-split and interleaved."""
    dim, rotary_dim, cell = 8, 6, 40
    body: list[str] = []
    rows = [
        ("half-split (GPT-NeoX), rotary_interleaved=False", False),
        ("interleaved (GPT-J), rotary_interleaved=True", True),
    ]
    for r, (title, interleaved) in enumerate(rows):
        y = 20 + r * 120
        body.append(_text(0, y, title, font_weight="bold"))
        partners = rotary_pairs(dim, rotary_dim, interleaved)
        pair_of: dict[int, int] = {}
        for a, b in enumerate(partners):
            if a < b:
                pair_of[a] = pair_of[b] = len(pair_of) // 2
        for a in range(dim):
            x = 10 + a * cell
            colour = COLOURS[pair_of[a] % len(COLOURS)] if a in pair_of else GREY
            tip = f"feature {a} turns with {partners[a]}" if a in pair_of else "not rotated"
            body.append(_rect(x, y + 50, cell - 4, 26, colour, tip))
            body.append(_text(x + 12, y + 68, str(a), fill="#fff" if a in pair_of else "#555"))
        for a, b in enumerate(partners):
            if a < b:
                xa, xb = 10 + a * cell + 18, 10 + b * cell + 18
                mid, lift = (xa + xb) / 2, 10 + 6 * (b - a)
                colour = COLOURS[pair_of[a] % len(COLOURS)]
                body.append(
                    f'<path d="M {xa} {y + 48} Q {mid} {y + 48 - lift} {xb} {y + 48}" '
                    f'fill="none" stroke="{colour}" stroke-width="2"/>'
                )
        note = f"features >= R = {rotary_dim} pass through (D = {dim})"
        body.append(_text(10 + rotary_dim * cell, y + 92, note, fill="#777"))
    return _svg(10 + dim * cell + 160, 260, body)


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """MkDocs event: add the layouts page's pictures to the site's files."""
    for name, draw in (("packed", packed_svg), ("paged", paged_svg), ("rotary", rotary_svg)):
        files.append(File.generated(config, f"img/layouts/{name}.svg", content=draw()))
    return files
