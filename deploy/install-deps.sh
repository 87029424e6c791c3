#!/usr/bin/env bash
# Debian packages the test suite and the cluster test bed need, by name.
# As root: installs what is missing (apt-get). Otherwise: says what is missing
# and exits 0; the tests that need it then skip with one line each.
#   openssh-server sshfs fuse3  the shared file system of the cluster test bed
#   libfaketime                 a node with a skewed clock
#   munge libmunge-dev          per-user authentication (mpm agent --auth munge)
#   iproute2                    network namespaces of the test bed
#   cmake perl dpkg-dev         the CMake benchmark tree; GNU make's own test suite
set -u
packages=(openssh-server sshfs fuse3 libfaketime munge libmunge-dev iproute2 cmake perl dpkg-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "mpmake: missing Debian packages: ${missing[*]} (run 'sudo $0' to install them; tests that need them will skip)" >&2
  exit 0
fi
echo "mpmake: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "mpmake: could not install ${missing[*]}; tests that need them will skip" >&2; exit 0; }
fi
