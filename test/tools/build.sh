#!/usr/bin/env bash
# Build the heavy test tools pinned in test/tools/go.mod into <repo>/bin/, each only
# when its binary is missing or older than the go.mod/go.sum that pins it.
#
#   test/tools/build.sh                 # all tools
#   test/tools/build.sh hydra jaeger    # some tools
#   FORCE=1 test/tools/build.sh ghz     # rebuild even if up to date
#
# Tools: hydra jaeger ghz staticcheck benchstat exchangeas. Works from any directory.
# On a shared machine run it as `nice -n 19 test/tools/build.sh`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bindir="$root/bin"

# The tools module sits inside the repository's git work tree; VCS stamping only adds
# failure modes (worktrees, safe.directory in CI), so always pass -buildvcs=false.
case " ${GOFLAGS:-} " in
  *" -buildvcs="*) ;;
  *) export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false" ;;
esac

all_tools=(hydra jaeger ghz staticcheck benchstat exchangeas)

# tool_spec NAME -> sets: moddir (relative to test/tools), pkg, mod (module for the
# version stamp, empty for none), tags, xvar (ldflags -X variable set to that version),
# srcs (source files of our own, relative to moddir, that also make the binary out of date).
tool_spec() {
  moddir=. tags= xvar= mod= srcs=
  case "$1" in
    hydra)
      pkg=github.com/ory/hydra/v2
      mod=github.com/ory/hydra/v2
      tags=sqlite,sqlite_omit_load_extension # without sqlite, `dsn: memory` fails
      xvar=github.com/ory/hydra/v2/driver/config.Version ;;
    jaeger)
      pkg=github.com/jaegertracing/jaeger/cmd/jaeger
      mod=github.com/jaegertracing/jaeger
      xvar=github.com/jaegertracing/jaeger/internal/version.latestVersion ;;
    ghz)
      pkg=github.com/bojand/ghz/cmd/ghz
      mod=github.com/bojand/ghz
      xvar=main.version ;;
    staticcheck)
      pkg=honnef.co/go/tools/cmd/staticcheck ;; # reports its version from build info
    benchstat)
      pkg=golang.org/x/perf/cmd/benchstat ;;
    exchangeas)
      # The token exchange authorization server of the suite: our main on the zitadel/oidc OpenID
      # provider, in a module of its own so that its dependencies do not move the other tools'.
      moddir=exchangeas
      pkg=.
      srcs=main.go ;;
    *)
      echo "build.sh: unknown tool '$1' (known: ${all_tools[*]})" >&2
      return 1 ;;
  esac
}

build_one() {
  local name="$1" dir out tmp ldflags= version start secs size
  tool_spec "$name"
  dir="$here/$moddir"
  out="$bindir/$name"

  local fresh=1 f
  for f in go.mod go.sum $srcs; do
    [[ "$out" -nt "$dir/$f" ]] || fresh=
  done
  if [[ -z "${FORCE:-}" && -x "$out" && -n "$fresh" ]]; then
    echo "$name: up to date (bin/$name)"
    return 0
  fi

  if [[ -n "$mod" ]]; then
    version="$(cd "$dir" && go list -m -f '{{.Version}}' "$mod")"
    ldflags="-X $xvar=$version"
  fi

  echo "$name: building $pkg${version:+@$version}${tags:+ (tags $tags)} ..."
  mkdir -p "$bindir"
  tmp="$out.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  start=$(date +%s)
  (cd "$dir" && go build ${tags:+-tags "$tags"} ${ldflags:+-ldflags "$ldflags"} -o "$tmp" "$pkg")
  mv -f "$tmp" "$out" # a build that was cut short never leaves a fresh-looking binary
  trap - EXIT
  secs=$(($(date +%s) - start))
  size=$(du -m "$out" | cut -f1)
  echo "$name: built bin/$name in ${secs}s (${size} MB)"
}

if [[ $# -eq 0 ]]; then
  set -- "${all_tools[@]}"
fi
for t in "$@"; do
  case "$t" in -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
  tool_spec "$t" # fail on an unknown name before building anything
done
for t in "$@"; do
  build_one "$t"
done
