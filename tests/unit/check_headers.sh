#!/bin/sh
# header_langs (suite unit): the public headers (include/) compile alone, warning-free under
# -Wall -Wextra -pedantic, as C89 to C2x and, where a C++ compiler is installed, C++98 to C++20
# (a device maker's app may be either); flc.h's FLC_VERSION_* macros are the project's version.
#   check_headers.sh SOURCE_ROOT VERSION CC
set -u
SRC=$1
VERSION=$2
CC=$3
INC="$SRC/include"
bad=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for h in "$INC"/*.h; do
    for std in c89 c99 c11 c2x; do
        printf '#include "%s"\nint main(void) { return 0; }\n' "$(basename "$h")" >"$tmp/t.c"
        if ! "$CC" -std=$std -Wall -Wextra -pedantic -Werror -I"$INC" -fsyntax-only "$tmp/t.c" \
            >"$tmp/err" 2>&1; then
            echo "FAIL: $(basename "$h") as $std:"; cat "$tmp/err"; bad=1
        fi
    done
    CXX=$(command -v c++ || command -v g++ || command -v clang++ || true)
    [ -n "$CXX" ] || continue
    for std in c++98 c++11 c++17 c++20; do
        printf '#include "%s"\nint main() { return 0; }\n' "$(basename "$h")" >"$tmp/t.cc"
        if ! "$CXX" -std=$std -Wall -Wextra -pedantic -Werror -I"$INC" -fsyntax-only "$tmp/t.cc" \
            >"$tmp/err" 2>&1; then
            echo "FAIL: $(basename "$h") as $std:"; cat "$tmp/err"; bad=1
        fi
    done
done
printf '#include "flc.h"\nFLC_VERSION_MAJOR.FLC_VERSION_MINOR.FLC_VERSION_PATCH\n' >"$tmp/v.c"
v=$("$CC" -E -P -I"$INC" "$tmp/v.c" | tail -n 1 | tr -d ' ')
[ "$v" = "$VERSION" ] || { echo "FAIL: flc.h says version $v, the project $VERSION"; bad=1; }
[ "$bad" -eq 0 ] && echo "include/*.h compile as C89..C2x and C++98..C++20; flc.h version $v"
exit $bad
