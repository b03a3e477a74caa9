#!/usr/bin/env bash
# Installs (or uninstalls) containerd-shim-dockerish-v2 on a node.
#
#   deploy/install.sh [--binary PATH] [--prefix DIR] [--config FILE] [--shim-config FILE] [--no-restart]
#   deploy/install.sh uninstall [--prefix DIR] [--config FILE] [--no-restart]
#
# - copies the binary to PREFIX (default /usr/local/bin), which is all ctr and nerdctl need;
# - registers the CRI runtime handler `dockerish` by editing containerd's config.toml IN PLACE
#   (containerd 1.x `imports` replace whole plugin sections, so a drop-in would wipe CRI
#   settings), between marker lines, so running it again replaces the block (idempotent);
#   the table matches the file's `version` (2: containerd 1.6/1.7, 3: containerd 2.x);
# - installs deploy/dockerish.toml as /etc/containerd/dockerish.toml unless one exists;
# - restarts containerd through systemd when it runs under systemd (--no-restart to skip).
#   Running containers survive: containerd.service uses KillMode=process.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
action=install
binary=""
prefix=/usr/local/bin
config=/etc/containerd/config.toml
shim_config=/etc/containerd/dockerish.toml
restart=1
begin="# BEGIN containerd-shim-dockerish-v2 (managed by deploy/install.sh)"
end="# END containerd-shim-dockerish-v2"

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    install|uninstall) action=$1 ;;
    --binary) binary=${2:?--binary needs a path}; shift ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --config) config=${2:?--config needs a file}; shift ;;
    --shim-config) shim_config=${2:?--shim-config needs a file}; shift ;;
    --no-restart) restart=0 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

# containerd resolves ConfigPath as given: make it absolute.
case "$shim_config" in /*) ;; *) shim_config="$PWD/$shim_config" ;; esac

# Prints the config file with our block removed.
strip_block() {
  awk -v b="$begin" -v e="$end" '$0==b{skip=1; next} $0==e{skip=0; next} !skip' "$1"
}

config_version() {
  local v
  v=$(sed -n 's/^[[:space:]]*version[[:space:]]*=[[:space:]]*\([0-9]\+\).*/\1/p' "$1" | head -n1)
  if [ -z "$v" ]; then
    # No version line: containerd 2.x reads it as 3 only when it says so; 1.x files default to 1,
    # which we do not support, so ask for an explicit version.
    die "$1 has no 'version = 2|3' line: add one (containerd 1.6/1.7: 2, containerd 2.x: 3)"
  fi
  echo "$v"
}

# The runtime table, from the same snippet files the README shows (one source of truth), with
# ConfigPath pointing at --shim-config. $2 = the config without our block.
runtime_block() {
  local snippet
  case "$1" in
    2) snippet="$here/containerd-config-v2.toml" ;;
    3) snippet="$here/containerd-config-v3.toml" ;;
    *) die "$config: config version $1 is not supported (use version 2 or 3)" ;;
  esac
  echo "$begin"
  # containerd 1.6/1.7 decode the `runtimes` table over the built-in defaults by REPLACING the
  # map: a config that declares no runtime at all (Debian's default config.toml) would lose the
  # built-in `runc` handler, and the CRI plugin then refuses to load ("no corresponding runtime
  # configured in `containerd.runtimes` for `containerd` `default_runtime_name = "runc"`").
  # Declare the default handler too in that case (same values as containerd's default).
  if [ "$1" = 2 ] && ! printf '%s\n' "$2" | grep -q 'containerd\.runtimes\.[^]]*\]'; then
    printf '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n'
  fi
  grep -v '^[[:space:]]*#' "$snippet" | grep -v '^version' | sed '/^[[:space:]]*$/d' \
    | sed "s|^\([[:space:]]*ConfigPath[[:space:]]*=[[:space:]]*\)[\"'].*[\"']|\1\"$shim_config\"|"
  echo "$end"
}

restart_containerd() {
  [ "$restart" = 1 ] || { echo "containerd not restarted (--no-restart): restart it to pick up the runtime"; return; }
  if command -v systemctl >/dev/null && systemctl is-active --quiet containerd 2>/dev/null; then
    systemctl restart containerd
    echo "containerd restarted"
  else
    echo "containerd is not running under systemd here: restart it yourself to pick up the runtime"
  fi
}

case "$action" in
install)
  if [ -z "$binary" ]; then
    binary="$here/../target/release/containerd-shim-dockerish-v2"
  fi
  [ -x "$binary" ] || die "no shim binary at $binary (build it: cargo build --release -p containerd-shim-dockerish-v2)"
  install -d "$prefix"
  install -m 0755 "$binary" "$prefix/containerd-shim-dockerish-v2"
  echo "installed $prefix/containerd-shim-dockerish-v2"

  if [ ! -e "$shim_config" ]; then
    install -d "$(dirname "$shim_config")"
    install -m 0644 "$here/dockerish.toml" "$shim_config"
    echo "installed $shim_config"
  fi

  if [ ! -e "$config" ]; then
    install -d "$(dirname "$config")"
    case "$(containerd --version 2>/dev/null | awk '{print $3}')" in
      v2.*|2.*) printf 'version = 3\n' > "$config" ;;
      *) printf 'version = 2\n' > "$config" ;;
    esac
  fi
  version=$(config_version "$config")
  stripped=$(strip_block "$config")
  if printf '%s\n' "$stripped" | grep -q 'containerd\.runtimes\.dockerish\]'; then
    die "$config already defines a 'dockerish' runtime outside this script's block: remove it or rename it"
  fi
  tmp=$(mktemp "$config.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  { printf '%s\n' "$stripped"; echo; runtime_block "$version" "$stripped"; } > "$tmp"
  if command -v containerd >/dev/null; then
    containerd --config "$tmp" config dump >/dev/null 2>&1 || die "the edited config would not parse: $config left unchanged"
  fi
  chmod --reference="$config" "$tmp" 2>/dev/null || chmod 0644 "$tmp"
  mv "$tmp" "$config"
  trap - EXIT
  echo "registered runtime handler 'dockerish' in $config (config version $version)"
  restart_containerd
  ;;
uninstall)
  rm -f "$prefix/containerd-shim-dockerish-v2"
  echo "removed $prefix/containerd-shim-dockerish-v2"
  if [ -e "$config" ]; then
    tmp=$(mktemp "$config.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    strip_block "$config" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$tmp"
    chmod --reference="$config" "$tmp" 2>/dev/null || chmod 0644 "$tmp"
    mv "$tmp" "$config"
    trap - EXIT
    echo "removed the 'dockerish' runtime handler from $config"
  fi
  echo "left $shim_config in place (your settings); delete it by hand if unwanted"
  restart_containerd
  ;;
esac
