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
#   the table matches the file's `version`, which is how containerd reads it (2: containerd
#   1.6/1.7; 3 and 4: containerd 2.x, whose `config default` writes 4 from 2.3 on and which
#   migrates 2 and 3 in memory on every start; both use the same runtimes table);
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

# The top-level `version` (a key before the first table; tables may hold keys of that name).
config_version() {
  local v
  v=$(awk '/^[[:space:]]*\[/ { exit } match($0, /^[[:space:]]*version[[:space:]]*=[[:space:]]*[0-9]+/) { sub(/^[^=]*=[[:space:]]*/, ""); sub(/[^0-9].*$/, ""); print; exit }' "$1")
  if [ -z "$v" ]; then
    # No version line: every containerd reads the file as the old version 1 layout (2.x
    # migrates it from "version 0"), which we do not support, so ask for an explicit version.
    die "$1 has no top-level 'version = 2|3|4' line: add one (containerd 1.6/1.7: 2, containerd 2.x: what 'containerd config default' writes)"
  fi
  echo "$v"
}

# The config version the containerd on PATH writes by default (its native one), for a new file.
native_config_version() {
  local v=""
  if command -v containerd >/dev/null; then
    v=$(containerd config default 2>/dev/null | awk '/^[[:space:]]*\[/ { exit } /^version[[:space:]]*=/ { sub(/^[^=]*=[[:space:]]*/, ""); print; exit }')
  fi
  echo "${v:-2}"
}

# The major version of the containerd on PATH ("" if there is none).
containerd_major() {
  command -v containerd >/dev/null || return 0
  containerd --version 2>/dev/null | awk '{ v = $3; sub(/^v/, "", v); split(v, p, "."); print p[1] }'
}

# The runtime table, from the same snippet files the README shows (one source of truth), with
# ConfigPath pointing at --shim-config. $2 = the config without our block.
runtime_block() {
  local snippet
  case "$1" in
    2) snippet="$here/containerd-config-v2.toml" ;;
    # Version 4 (2.3's default) moved only the server settings; the CRI runtimes table of 3
    # is read unchanged (checked with 2.3.4's `config default` and `config migrate`).
    3|4) snippet="$here/containerd-config-v3.toml" ;;
    *) die "$config: config version $1 is not supported (use version 2, 3 or 4)" ;;
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
    printf 'version = %s\n' "$(native_config_version)" > "$config"
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
  if [ "$(containerd_major)" = 2 ] && [ "$version" -lt "$(native_config_version)" ]; then
    echo "note: containerd $(containerd --version | awk '{print $3}') migrates config version $version in memory on every start; 'containerd config migrate' converts the file once"
  fi
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
