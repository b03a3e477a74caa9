#!/usr/bin/env bash
# Installs (or uninstalls) containerd-shim-dockerish-v2 on this node.
#
#   deploy/install.sh [--binary PATH] [--prefix DIR] [--config FILE] [--shim-config FILE] [--no-restart]
#   deploy/install.sh uninstall [--binary PATH] [--prefix DIR] [--config FILE] [--no-restart] [--force]
#
# A thin wrapper around the binary's own `install` / `uninstall` (shim/src/install.rs, the one
# implementation, which the node installer image runs too; `containerd-shim-dockerish-v2 install
# --help` lists every option). What it does:
# - copies the binary to PREFIX (default /usr/local/bin) through a temporary file and a rename, so
#   running shims keep their binary; that is all ctr and nerdctl need;
# - registers the CRI runtime handler `dockerish` in containerd's config.toml IN PLACE, between
#   marker lines, in the table of the file's `version` (2: containerd 1.6/1.7; 3 and 4: 2.x);
#   running it again changes nothing; `uninstall` restores the file byte for byte;
# - installs deploy/dockerish.toml as /etc/containerd/dockerish.toml unless one exists;
# - restarts containerd through systemd when its config changed, refusing up front (nothing
#   changed) when systemd does not run it (--no-restart to skip). Running containers survive:
#   containerd.service uses KillMode=process, which is checked first.
# --binary defaults to target/release/containerd-shim-dockerish-v2 of this checkout (for
# uninstall also the installed one).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
action=install
binary=""
rest=()

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    install|uninstall) action=$1 ;;
    --binary) binary=${2:?--binary needs a path}; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) rest+=("$1") ;;
  esac
  shift
done

if [ -z "$binary" ]; then
  binary="$here/../target/release/containerd-shim-dockerish-v2"
  if [ "$action" = uninstall ] && [ ! -x "$binary" ]; then
    binary=$(command -v containerd-shim-dockerish-v2 || true)
  fi
fi
[ -n "$binary" ] && [ -x "$binary" ] || die "no shim binary at ${binary:-target/release} (build it: cargo build --release -p containerd-shim-dockerish-v2)"

if [ "$action" = install ]; then
  exec "$binary" install --binary "$binary" "${rest[@]}"
fi
exec "$binary" uninstall "${rest[@]}"
