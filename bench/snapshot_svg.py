"""docs/bench.svg from a make bench page: its six chart panels, one under the
other, in one self-contained SVG (README shows it; GitHub renders SVG, not
the HTML page).

Run: make bench-svg   (reads reports/out/bench.html, writes docs/bench.svg)
"""
import os
import re
import sys

PANEL_W, PANEL_H, GAP = 640, 260, 10


def snapshot(html):
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    panels = re.findall(r"<svg xmlns=\"http://www.w3.org/2000/svg\".*?</svg>", html, re.S)
    if not style or not panels:
        raise ValueError("no <style> or no chart panel: not a make bench page")
    height = len(panels) * (PANEL_H + GAP) - GAP
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_W}" height="{height}" '
           f'viewBox="0 0 {PANEL_W} {height}"><style>{style.group(1)}</style>'
           '<rect width="100%" height="100%" fill="white"/>']
    for i, p in enumerate(panels):
        out.append(p.replace("<svg ", f'<svg x="0" y="{i * (PANEL_H + GAP)}" ', 1))
    out.append("</svg>\n")
    return "".join(out)


def main(argv):
    src, dst = (argv + ["reports/out/bench.html", "docs/bench.svg"][len(argv):])[:2]
    try:
        with open(src) as f:
            svg = snapshot(f.read())
    except (OSError, ValueError) as e:
        print(f"bench-svg: {src}: {e}", file=sys.stderr)
        return 2
    with open(dst + ".tmp", "w") as f:
        f.write(svg)
    os.replace(dst + ".tmp", dst)
    print(f"wrote {dst} ({svg.count('aria-label')} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
