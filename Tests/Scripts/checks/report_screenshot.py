#!/usr/bin/env python3
"""Renders a BertKit report.html in headless Chromium and checks that the screenshot shows its curves.

    report_screenshot.py --html RUN/report.html --png OUT.png [--browser chromium-headless-shell]

What it checks, on the pixels Chromium drew (not on the HTML text):
  - the page is not blank: at least --min-ink (default 0.5%) of the pixels differ from white;
  - every colour that the page's SVG draws a curve or a point with (each `stroke="#rrggbb"` of a
    <polyline> and each `fill="#rrggbb"` of a <circle>) appears on at least --min-pixels pixels
    (default 60), within a small distance for anti-aliasing. A chart that does not render, an SVG that
    Chromium refuses, or a series drawn outside the view fails here.
Exit status 0 when every check holds, 1 otherwise (each failure printed), 2 for bad usage.

The PNG is decoded with the standard library only (zlib and the five PNG row filters), so the check
needs nothing but Python 3 and Debian's `chromium-headless-shell` (or `chromium`).
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path


def decode_png(data: bytes):
    """(width, height, channels, rows) of an 8-bit RGB or RGBA PNG; rows are bytes, one per line."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace != 0:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if width is None:
        raise ValueError("PNG without IHDR")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        filter_type = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filter_type == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            elif filter_type != 0:
                raise ValueError(f"row {y}: unknown PNG filter {filter_type}")
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def drawn_colours(html: str):
    """The colours the page draws its series with: polyline strokes and circle fills."""
    colours = set(re.findall(r'<polyline[^>]*stroke="(#[0-9a-fA-F]{6})"', html))
    colours |= set(re.findall(r'<circle[^>]*fill="(#[0-9a-fA-F]{6})"', html))
    return sorted(c.lower() for c in colours)


def find_browser(name):
    for candidate in ([name] if name else ["chromium-headless-shell", "chromium", "chromium-browser"]):
        path = shutil.which(candidate)
        if path:
            return path
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--html", required=True, type=Path, help="the report.html to render")
    ap.add_argument("--png", type=Path, help="where to keep the screenshot (default: a temporary file)")
    ap.add_argument("--browser", help="the Chromium binary (default: chromium-headless-shell, else chromium)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=4000, help="the window height; the page is cut there")
    ap.add_argument("--scale", type=float, default=1.0, help="device scale factor (0.6 makes a smaller image of the same page)")
    ap.add_argument("--min-ink", type=float, default=0.005, help="least share of non-white pixels")
    ap.add_argument("--min-pixels", type=int, default=60, help="least pixels per drawn colour")
    args = ap.parse_args()
    if not args.html.is_file():
        print(f"{args.html}: no such file", file=sys.stderr)
        return 2
    browser = find_browser(args.browser)
    if browser is None:
        print("no Chromium found: install Debian's chromium-headless-shell (apt-get install chromium-headless-shell)", file=sys.stderr)
        return 2
    html = args.html.read_text(encoding="utf-8")
    colours = drawn_colours(html)
    if not colours:
        print(f"{args.html}: the page draws no series (no <polyline> or <circle> with a colour)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        png = args.png or Path(tmp) / "screenshot.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        if png.exists():
            png.unlink()
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--force-device-scale-factor={args.scale}",
                   f"--user-data-dir={tmp}/profile", f"--window-size={args.width},{args.height}", f"--screenshot={png.resolve()}",
                   args.html.resolve().as_uri()]
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": tmp})
        if run.returncode != 0 or not png.exists():
            print(f"{browser} failed (exit {run.returncode}):\n{run.stderr[-2000:]}", file=sys.stderr)
            return 1
        width, height, channels, rows = decode_png(png.read_bytes())
    targets = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours]
    counts = [0] * len(targets)
    ink = 0
    for row in rows:
        for x in range(0, width * channels, channels):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if r < 245 or g < 245 or b < 245:
                ink += 1
                for k, (tr, tg, tb) in enumerate(targets):
                    if abs(r - tr) + abs(g - tg) + abs(b - tb) <= 36:
                        counts[k] += 1
    failures = []
    share = ink / (width * height)
    if share < args.min_ink:
        failures.append(f"the screenshot is blank: {share:.3%} of the pixels are not white (at least {args.min_ink:.1%} expected)")
    for colour, count in zip(colours, counts):
        if count < args.min_pixels:
            failures.append(f"colour {colour} (a drawn series) covers {count} pixels, fewer than {args.min_pixels}")
    print(f"{args.html}: {width}x{height} screenshot{' at ' + str(args.png) if args.png else ''}, {share:.2%} ink, "
          + ", ".join(f"{c} {n} px" for c, n in zip(colours, counts)))
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
