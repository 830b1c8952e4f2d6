#!/bin/sh
# check_install_link.sh BUILD SOURCE CC [PARTS]: what a device maker or an embedder does after
# `ninja install`, into a scratch DESTDIR: build fl_client/examples/device.c and
# fl_server/examples/embed.c with each installed pkg-config file (libflclient, libflclient-static,
# libflserver, libflserver-static) as their guides say, and run each program to its usage line.
# The static ones must not need fedrop's shared libraries; the shared ones must.
# PARTS (default "server sim") names the optional parts the build has (-Dserver, -Dsim): the
# coordinator's libraries, fl_server and fl_sim must be installed when named and absent when not;
# libflclient and fl_client always are. scripts/check-client-only passes "" (client only).
set -eu
build=$1 src=$2 cc=$3 parts=${4-server sim}
has() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fedrop-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "check_install_link: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install --destdir failed"; }
pc=$(find "$tmp/root" -name libflclient-static.pc)
[ -n "$pc" ] || fail "no libflclient-static.pc installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
installed() { [ -e "$libdir/$1" ] || [ -e "$pcdir/$1" ] || [ -n "$(find "$tmp/root" -name "$1")" ]; }
want="libflclient.a libflclient.so libflclient.pc flc.h fl_client"
unwanted=""
progs=fl_client/examples/device.c:libflclient
if has server; then
    want="$want libflserver.a libflserver.so libflserver.pc libflserver-static.pc fls.h fl_server"
    progs="$progs fl_server/examples/embed.c:libflserver"
else
    unwanted=" libflserver.a libflserver.so libflserver.pc libflserver-static.pc fl_server fl_server.service"
fi
if has sim; then want="$want fl_sim"; else unwanted="$unwanted fl_sim"; fi
for f in $want; do
    installed "$f" || fail "$f not installed (parts: ${parts:-client only})"
done
for f in $unwanted; do
    ! installed "$f" || fail "$f installed, though its part is not built (parts: ${parts:-client only})"
done
# The installed fl_client runs (against the installed libflclient.so).
bin=$(dirname "$(find "$tmp/root" -name fl_client -type f)")
LD_LIBRARY_PATH="$libdir" "$bin/fl_client" --version >"$tmp/out" 2>&1 ||
    fail "installed fl_client --version failed: $(cat "$tmp/out")"
echo "check_install_link: installed $want; not installed:${unwanted:- (nothing left out)}"
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$tmp/root"

n=0
for prog in $progs; do
    file=${prog%%:*} pkg=${prog##*:} base=$(basename "${prog%%:*}" .c)
    for kind in shared static; do
        name=$pkg
        [ "$kind" = static ] && name=$pkg-static
        flags=$(pkg-config --cflags --libs "$name") || fail "pkg-config $name failed"
        exe="$tmp/$base-$kind"
        # shellcheck disable=SC2086 # CC and the pkg-config flags are words
        $cc -std=c11 -Wall -Wextra -Werror "$src/$file" $flags -pthread -o "$exe" ||
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
nprog=$(($(echo $progs | wc -w) * 2))
[ "$n" -eq "$nprog" ] || fail "$n of $nprog programs checked"
echo "check_install_link: $n programs built from an install and run"

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
