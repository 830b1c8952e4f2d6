#!/usr/bin/env python3
"""Every option a benchmark's --help names is in README.md's "Every benchmark's options" table.

Usage: check_bench_options.py BUILD_BENCH_DIR README.md

For each bench_* program built, the options of its usage lines (the first lines of --help, up to
the first that neither starts with "usage:" nor with a space) must each appear in the table's row
of that program, and each program must have a row. The meson test `bench_options`.
"""
import os
import re
import subprocess
import sys

bench_dir, readme = sys.argv[1], sys.argv[2]
rows = {}
with open(readme) as f:
    for line in f:
        m = re.match(r"\| `(bench_[a-z]+)` \| (.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(2)
bad = 0
for name in sorted(os.listdir(bench_dir)):
    path = os.path.join(bench_dir, name)
    if not name.startswith("bench_") or not os.path.isfile(path) or not os.access(path, os.X_OK):
        continue
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    usage = []
    for i, line in enumerate(out.splitlines()):
        if i > 0 and not line.startswith(" "):
            break
        usage.append(line)
    opts = sorted(set(re.findall(r"--[a-z][a-z0-9-]*", "\n".join(usage))) - {"--help"})
    if name not in rows:
        print("%s: no row in %s's table of benchmark options" % (name, readme))
        bad = 1
        continue
    missing = [o for o in opts if not re.search(re.escape(o) + r"(?![a-z0-9-])", rows[name])]
    if missing:
        print("%s: --help names %s, which its row in %s does not" % (name, " ".join(missing),
                                                                    readme))
        bad = 1
    else:
        print("%s: %d options, each in its row" % (name, len(opts)))
sys.exit(bad)
