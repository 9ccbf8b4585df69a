#!/bin/sh
# mk/vendor-build.sh - build and install a server extension from a
# vendored source tarball, never from the network (make deps, make
# deps-citus).
#
#   mk/vendor-build.sh VENDOR_DIR NAME CONTROL PG_CONFIG [configure]
#
# Does nothing when the server already has the extension
# ($(pg_config --sharedir)/extension/CONTROL.control).  Otherwise checks
# VENDOR_DIR/NAME.tar.gz against VENDOR_DIR/SHA256SUMS, unpacks it in
# build/vendor/, applies VENDOR_DIR/NAME-*.patch when there is one, runs
# ./configure (when the fifth argument is "configure"), make and make
# install (with sudo when not root), without LLVM bitcode.  The build's output goes to
# build/vendor/NAME.log; its tail is shown when a step fails.  Exit
# status 3: the tarball is not there (the caller says what to do).
set -eu
vendor=$1 name=$2 control=$3 pg_config=$4 configure=${5:-}
ext="$("$pg_config" --sharedir)/extension"
[ -f "$ext/$control.control" ] && exit 0
tarball="$vendor/$name.tar.gz"
[ -f "$tarball" ] || exit 3
vendor=$(cd "$vendor" && pwd) # the build runs in another directory
tarball="$vendor/$name.tar.gz"
want=$(grep " $name.tar.gz\$" "$vendor/SHA256SUMS" | cut -d' ' -f1 || true)
got=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ -z "$want" ] || [ "$want" != "$got" ]; then
  echo "$tarball does not match $vendor/SHA256SUMS" >&2
  exit 1
fi
for p in "$vendor"/"$name"-*.patch; do
  [ -f "$p" ] || continue
  pw=$(grep " ${p##*/}\$" "$vendor/SHA256SUMS" | cut -d' ' -f1 || true)
  if [ -z "$pw" ] || [ "$pw" != "$(sha256sum "$p" | cut -d' ' -f1)" ]; then
    echo "$p does not match $vendor/SHA256SUMS" >&2
    exit 1
  fi
done
echo "building $name from $tarball (log: build/vendor/$name.log)"
rm -rf "build/vendor/$name"
mkdir -p build/vendor
log="$PWD/build/vendor/$name.log"
tar xzf "$tarball" -C build/vendor
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
fail() { tail -30 "$log" >&2; echo "building $name failed (whole log: $log)" >&2; exit 1; }
(
  cd "build/vendor/$name"
  for p in "$vendor"/"$name"-*.patch; do
    [ -f "$p" ] || continue
    patch -p1 < "$p"
  done
  if [ "$configure" = configure ]; then ./configure PG_CONFIG="$pg_config"; fi
  # with_llvm=no: no LLVM bitcode for the server's JIT (half the build
  # time when clang is installed; the extension works without it)
  make -j"$(nproc)" PG_CONFIG="$pg_config" with_llvm=no
  $SUDO make PG_CONFIG="$pg_config" with_llvm=no install
) >"$log" 2>&1 || fail
echo "$name installed into $ext"
