"""``image/png``: the record's SVG chart, rasterised, for viewers that show no SVG.

GitHub's notebook viewer runs no scripts, strips styles and does not reliably show SVG; a PNG
of the chart reads there, in nbconvert's HTML and in JupyterLab without nbtrack's extension.
It is the SVG itself rasterised by resvg (a Rust SVG renderer, through ``resvg-py``: a 1.4 MB
wheel with no system dependency, no browser and no network), so the two images are one
picture: same panels, colours, axes and legends.

Measured on the project's 2-core machine (benchmarks/bench_redraw.py): import under 5 ms, a
640 px chart of six panels 15-60 ms with its reduction to a 32-colour palette (Pillow), 4-10 KB.
The record carries it in the final bundle; live redraws leave it out. A record is redrawn
after its cell as its upload progresses (a run id, then "synced") with the same chart: the last
few PNGs are kept by their SVG, so that those redraws do not rasterise again (resvg holds the
GIL while it works, which would stall the next cell).

Text is drawn with DejaVu Sans, the font matplotlib ships (an MLflow dependency), read from its
file without importing matplotlib: the same glyphs on every machine, and no scan of the
system's fonts. Without that file the system's fonts are used.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
from pathlib import Path

__all__ = ["prepare", "render_png"]

_COLORS = 32


def prepare() -> None:
    """Import what ``render_png`` imports (~16 ms the first time), in the calling thread: a
    thread that renders later must not be the one to import them first. A first import racing
    the cell's own import of the same package (Pillow, under torchvision) can hand one of the
    two a half-made module."""
    with contextlib.suppress(ImportError):
        import resvg_py  # noqa: F401
    with contextlib.suppress(ImportError):
        from PIL import Image

        Image.preinit()  # the image formats' plugins, which Image.open imports on first use


@functools.lru_cache(maxsize=8)
def render_png(svg: str) -> bytes | None:
    """The SVG chart as PNG bytes, or None when resvg-py is not installed."""
    try:
        import resvg_py
    except ImportError:  # a dependency, but a record without its PNG is still a record
        return None
    # Lines without anti-aliasing keep exactly their colours: a 32-colour palette then holds
    # the picture unchanged, and it compresses to about half (noisy curves: 9 KB, not 16).
    font = _bundled_font()
    png = resvg_py.svg_to_bytes(
        svg_string=svg,
        skip_system_fonts=font is not None,
        font_files=[font] if font is not None else None,
        sans_serif_family="DejaVu Sans" if font is not None else None,
        shape_rendering="crisp_edges",
        text_rendering="optimize_speed",
    )
    return _palette(bytes(png))


@functools.cache
def _bundled_font() -> str | None:
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if path.is_file():
            return str(path)
    return None


def _palette(png: bytes) -> bytes:
    """The image with at most 32 colours: a chart has a handful, plus anti-aliased edges."""
    try:
        from PIL import Image
    except ImportError:
        return png
    with Image.open(io.BytesIO(png)) as image:
        # Octree keeps the chart's few flat colours exact (median cut would average a series
        # colour with its anti-aliased edges); dithering would only add noise to compress.
        reduced = image.convert("RGB").quantize(
            colors=_COLORS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    reduced.save(out, format="PNG", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png
