#!/bin/sh
# check_install_link.sh BUILD SOURCE CC: what a device maker or an embedder does after
# `ninja install`, into a scratch DESTDIR: build fl_client/examples/device.c and
# fl_server/examples/embed.c with each installed pkg-config file (libflclient, libflclient-static,
# libflserver, libflserver-static) as their guides say, and run each program to its usage line.
# The static ones must not need fedrop's shared libraries; the shared ones must.
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fedrop-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "check_install_link: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install --destdir failed"; }
pc=$(find "$tmp/root" -name libflclient-static.pc)
[ -n "$pc" ] || fail "no libflclient-static.pc installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
for f in libflclient.a libflserver.a libflclient.pc libflserver.pc libflserver-static.pc; do
    [ -e "$libdir/$f" ] || [ -e "$pcdir/$f" ] || fail "$f not installed beside $pc"
done
inc=$(find "$tmp/root" -name flc.h)
[ -n "$inc" ] || fail "flc.h not installed"
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$tmp/root"

n=0
for prog in fl_client/examples/device.c:libflclient fl_server/examples/embed.c:libflserver; do
    file=${prog%%:*} pkg=${prog##*:} base=$(basename "${prog%%:*}" .c)
    for kind in shared static; do
        name=$pkg
        [ "$kind" = static ] && name=$pkg-static
        flags=$(pkg-config --cflags --libs "$name") || fail "pkg-config $name failed"
        exe="$tmp/$base-$kind"
        # shellcheck disable=SC2086 # CC and the pkg-config flags are words
        $cc -std=c11 -Wall -Wextra -Werror "$src/$file" $flags -o "$exe" ||
            fail "$base.c did not build with pkg-config $name ($flags)"
        needed=$(readelf -d "$exe" | grep NEEDED || true)
        case "$kind:$needed" in
            static:*"$pkg.so"*) fail "$base-static needs $pkg.so: $needed" ;;
            shared:*"$pkg.so"*) ;;
            shared:*) fail "$base-shared does not need $pkg.so: $needed" ;;
        esac
        # With no arguments each prints its usage and exits 1 or 2: it loaded and ran.
        set +e
        LD_LIBRARY_PATH="$libdir" "$exe" >"$tmp/out" 2>&1
        rc=$?
        set -e
        grep -q "usage:" "$tmp/out" || fail "$base-$kind (rc $rc) did not run to its usage: $(cat "$tmp/out")"
        echo "$base.c with pkg-config $name: built, runs ($(echo $flags | wc -w) flags)"
        n=$((n + 1))
    done
done
[ "$n" -eq 4 ] || fail "$n of 4 programs checked"
echo "check_install_link: 4 programs built from an install and run"

# The installed guides (share/doc/fedrop): each relative link names a file or directory there.
doc=$(dirname "$(find "$tmp/root" -path '*doc/fedrop/fl_client.md')")
[ -d "$doc" ] || fail "no share/doc/fedrop/fl_client.md installed"
links=0
for md in "$doc"/*.md; do
    for t in $(grep -o '\]([^)[:space:]]*)' "$md" | sed 's/^](//; s/)$//; s/#.*//'); do
        case "$t" in *://* | '') continue ;; esac
        [ -e "$doc/$t" ] || fail "$(basename "$md") links to $t, not installed beside it"
        links=$((links + 1))
    done
done
[ "$links" -ge 10 ] || fail "only $links links checked in the installed guides"
echo "check_install_link: the installed guides' $links relative links resolve"
