"""check_static_exports.py NM ARCHIVE.a SHARED.so [ARCHIVE.a SHARED.so]...

Each static library (scripts/static-archive) must define, as global symbols, exactly the functions
its shared twin exports (its version script's global: list): none of fedrop's internal names, so
that they never clash with a program's own, and none of the API missing. Exit 1 naming the
difference otherwise."""
import subprocess
import sys


def defined_globals(nm, path, dynamic):
    args = [nm, '--defined-only', '-D' if dynamic else '-g', path]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # "ADDRESS TYPE NAME"; archive member headers ("x.o:") and blank lines have fewer parts.
        if len(parts) == 3 and parts[1] != 'A':  # A: the version node (LIBFLCLIENT_0.2 ...)
            names.add(parts[2].split('@')[0])
    return names


def main():
    nm, pairs = sys.argv[1], sys.argv[2:]
    if not pairs or len(pairs) % 2:
        print(__doc__)
        return 2
    bad = 0
    for archive, shared in zip(pairs[0::2], pairs[1::2]):
        a, s = defined_globals(nm, archive, False), defined_globals(nm, shared, True)
        if not s:
            print(shared, 'exports nothing: nm failed to read it?')
            bad += 1
        for name in sorted(a - s):
            print(archive, 'defines', name, 'globally, which', shared, 'keeps local')
            bad += 1
        for name in sorted(s - a):
            print(archive, 'lacks', name, 'which', shared, 'exports')
            bad += 1
        if not bad:
            print(archive, ':', len(a), 'global symbols, as', shared, '-', ' '.join(sorted(a)))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
