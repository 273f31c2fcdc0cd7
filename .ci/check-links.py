#!/usr/bin/env python3
"""Checks that every relative link in the repository's Markdown files
resolves: the file or directory exists, and a #fragment names a heading of
the Markdown file it points to (GitHub's anchor rules). Links to the web
are not followed (CI runs offline).

Usage: python3 .ci/check-links.py   (from anywhere; exits 1 on a broken link)
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files():
    """The Markdown files git knows (tracked or not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [os.path.join(ROOT, p) for p in out.splitlines() if p]


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    fenced = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                yield number, line


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen = {}
    result = set()
    for _, line in prose_lines(path):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def main():
    broken = []
    cache = {}
    for path in markdown_files():
        rel = os.path.relpath(path, ROOT)
        for number, line in prose_lines(path):
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # https:, mailto: ...
                file_part, _, fragment = target.partition("#")
                dest = path if not file_part else os.path.normpath(
                    os.path.join(os.path.dirname(path), file_part)
                )
                if not os.path.exists(dest):
                    broken.append(f"{rel}:{number}: {target}: no such file or directory")
                    continue
                if fragment and dest.endswith(".md"):
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if fragment not in cache[dest]:
                        broken.append(f"{rel}:{number}: {target}: no heading #{fragment} there")
    for b in broken:
        print(b, file=sys.stderr)
    if broken:
        sys.exit(1)
    print(f"check-links: every relative link resolves ({len(markdown_files())} Markdown files)")


if __name__ == "__main__":
    main()
