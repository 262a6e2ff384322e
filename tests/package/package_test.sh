#!/usr/bin/env bash
# package_test.sh BUILD CLIENT_SRC VERSION HAS_ENCLAVE: cpack's .deb and .rpm from BUILD (already
# built), the .deb unpacked with dpkg-deb -x into a temporary root, CLIENT_SRC built against that
# root with CMake and with pkg-config, and the .rpm's metadata and file list.
set -euo pipefail
build=$1 client=$2 version=$3 has_enclave=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "package test: $*" >&2; exit 1; }
command -v rpmbuild >/dev/null || fail "rpmbuild is missing (Debian package rpm): run scripts/bootstrap"

# --- the packages
cpack --config "$build/CPackConfig.cmake" -G "DEB;RPM" -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log" >&2; fail "cpack failed (log above)"; }
deb=$(compgen -G "$tmp/out/shield-nitro_${version}_*.deb") || fail "no shield-nitro_${version}_<arch>.deb in cpack's output: $(cd "$tmp/out" && echo *)"
rpm=$(compgen -G "$tmp/out/shield-nitro-${version}-1.*.rpm") || fail "no shield-nitro-${version}-1.<arch>.rpm in cpack's output: $(cd "$tmp/out" && echo *)"
echo "package sizes: $(stat -c '%n %s' "$deb" "$rpm" | sed "s|$tmp/out/||g" | paste -sd ' ')"

# --- the .deb: control fields, then its files where its listing says
[ "$(dpkg-deb -f "$deb" Package)" = shield-nitro ] || fail ".deb package name: $(dpkg-deb -f "$deb" Package)"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail ".deb version $(dpkg-deb -f "$deb" Version), want $version"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libssl3 libyaml-cpp0.7 binutils; do
  grep -qw "$d" <<<"$depends" || fail ".deb Depends '$depends' lacks $d"
done
! grep -qw libcurl4 <<<"$depends" || fail ".deb Depends '$depends' still names libcurl4 (nothing links libcurl)"
root=$tmp/root
dpkg-deb -x "$deb" "$root"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./||' >"$tmp/deb.list"
expected=(usr/bin/shield-nitro usr/include/shield_nitro/parent/enclave_client.h
  usr/include/shield_nitro/shield/shield.h usr/include/shield_nitro/plugin_abi.h
  usr/lib/cmake/shield_nitro/shield_nitroConfig.cmake usr/lib/cmake/shield_nitro/shield_nitroConfigVersion.cmake
  usr/lib/cmake/shield_nitro/shield_nitroTargets.cmake usr/share/pkgconfig/shield_nitro.pc)
for m in parent net channel attest kms nsm shield cbor core; do expected+=("usr/lib/libsn_$m.a"); done
[ "$has_enclave" = 1 ] && expected+=(usr/bin/shield-nitro-enclave)
for f in "${expected[@]}"; do
  grep -qx "$f" "$tmp/deb.list" || fail ".deb does not list $f"
  [ -f "$root/$f" ] || fail "$f listed but not unpacked"
done
# Development-only modules stay out, and every installed header's includes are installed.
for m in nsm_sim kms_local sim; do
  ! grep -q -e "^usr/include/shield_nitro/$m/" -e "^usr/lib/libsn_$m.a" "$tmp/deb.list" || fail ".deb carries the $m module"
done
grep -rhoE '#include "shield_nitro/[^"]+"' "$root/usr/include" | sed 's/.*"\(.*\)"/\1/' | sort -u |
  while read -r h; do [ -f "$root/usr/include/$h" ] || fail "an installed header includes $h, which is not installed"; done
[ "$("$root/usr/bin/shield-nitro" --version)" = "$version" ] || fail "installed shield-nitro --version is not $version"

# --- a client through find_package (the temporary root only: nothing is installed on the machine)
cmake -S "$client" -B "$tmp/client" -G Ninja -DCMAKE_PREFIX_PATH="$root/usr" >"$tmp/client.log" 2>&1 ||
  { cat "$tmp/client.log" >&2; fail "configuring the client against the package failed"; }
found=$(sed -n 's/^shield_nitro_DIR:PATH=//p' "$tmp/client/CMakeCache.txt")
[ "$found" = "$root/usr/lib/cmake/shield_nitro" ] || fail "find_package found '$found', not the unpacked package"
cmake --build "$tmp/client" >>"$tmp/client.log" 2>&1 || { cat "$tmp/client.log" >&2; fail "building the client failed"; }
"$tmp/client/client" "$tmp/nobody.sock" || fail "the CMake-built client failed"

# --- the same client through pkg-config
export PKG_CONFIG_PATH=$root/usr/share/pkgconfig
flags=$(pkg-config --cflags --libs shield_nitro) || fail "pkg-config does not find shield_nitro"
# The .pc file's paths are relative to itself (${pcfiledir}/../..): compare them resolved.
first_dir() { tr ' ' '\n' | sed -n "s/^$1//p" | head -1 | xargs -r realpath; }
[ "$(pkg-config --cflags-only-I shield_nitro | first_dir -I)" = "$root/usr/include" ] ||
  fail "pkg-config --cflags '$flags' does not point at the package's include folder first"
[ "$(pkg-config --libs-only-L shield_nitro | first_dir -L)" = "$root/usr/lib" ] ||
  fail "pkg-config --libs '$flags' does not point at the package's lib folder"
[[ "$(pkg-config --libs-only-l shield_nitro | xargs)" == \
  "-lsn_parent -lsn_channel -lsn_attest -lsn_kms -lsn_net -lsn_nsm -lsn_sealed -lsn_shield -lsn_cbor -lsn_core "* ]] ||
  fail "pkg-config --libs '$flags' does not list the libraries in link order"
for l in -lssl -lcrypto -pthread; do grep -qw -- "$l" <<<"$flags" || fail "pkg-config --libs '$flags' lacks $l"; done
! grep -qw -- -lcurl <<<"$flags" || fail "pkg-config --libs '$flags' still links curl"
# shellcheck disable=SC2086  # the flags are words
c++ -std=c++20 -o "$tmp/client_pc" "$client/main.cpp" $flags || fail "compiling with pkg-config's flags failed"
"$tmp/client_pc" "$tmp/nobody.sock" || fail "the pkg-config-built client failed"

# --- the .rpm (parent instances usually run Amazon Linux)
[ "$(rpm -qp --qf '%{NAME} %{VERSION}' "$rpm" 2>/dev/null)" = "shield-nitro $version" ] || fail ".rpm name/version is not shield-nitro $version"
requires=$(rpm -qpR "$rpm" 2>/dev/null)
for r in openssl-libs yaml-cpp binutils; do grep -qw "^$r" <<<"$requires" || fail ".rpm requires '$requires' lack $r"; done
! grep -q '^pkgconfig(' <<<"$requires" || fail ".rpm requires -devel packages through its .pc file: $(grep '^pkgconfig(' <<<"$requires" | xargs)"
rpm -qlp "$rpm" 2>/dev/null >"$tmp/rpm.list"
for f in "${expected[@]}"; do grep -qx "/$f" "$tmp/rpm.list" || fail ".rpm does not list /$f"; done
echo "package test: ok"
