#!/usr/bin/env bash
# update.sh keeps the Swagger UI files that /v1/docs serves (embedded in amrd, so that the
# build and the page need no network) equal to the npm package swagger-ui-dist at the
# version pinned in VERSION ("<version> <npm integrity>").
#
#   bash api/swaggerui/update.sh           fetch the pinned version, check its sha512 against
#                                          VERSION, and check that the files here are its own
#   bash api/swaggerui/update.sh 5.37.0    move to another version: its integrity is the one
#                                          the registry states (npm view ... dist.integrity);
#                                          the files and VERSION are rewritten (review the diff)
#
# It needs npm and the npm registry; `npm pack` only downloads the tarball (no install, no
# package scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkg=swagger-ui-dist
# The files amrd serves (api/openapi.go embeds the same list) and the licenses.
files=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE)

die() { echo "swaggerui: $*" >&2; exit 1; }
command -v npm >/dev/null || die "npm is missing (apt-get install npm)"
read -r pinned pinned_integrity <"$here/VERSION" || die "cannot read $here/VERSION"

version=${1:-$pinned}
if [ "$version" = "$pinned" ]; then
  integrity=$pinned_integrity
else
  integrity=$(npm view "$pkg@$version" dist.integrity) || die "npm view $pkg@$version failed"
  [ -n "$integrity" ] || die "the registry has no $pkg@$version"
fi
case $integrity in sha512-*) ;; *) die "not a sha512 integrity: $integrity" ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --ignore-scripts "$pkg@$version" >/dev/null) || die "npm pack $pkg@$version failed"
tgz=$tmp/$pkg-$version.tgz
[ -f "$tgz" ] || die "npm pack did not write $tgz"
got=$(node -e 'const c = require("crypto"), fs = require("fs");
process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
[ "$got" = "$integrity" ] || die "$pkg-$version.tgz has integrity $got, expected $integrity"
tar -xzf "$tgz" -C "$tmp"

if [ "$version" = "$pinned" ] && [ $# -eq 0 ]; then
  for f in "${files[@]}"; do
    cmp -s "$tmp/package/$f" "$here/$f" || die "$f differs from $pkg@$version's (run with the version to rewrite it)"
  done
  echo "swaggerui: the files are $pkg@$version's ($integrity)"
  exit 0
fi
for f in "${files[@]}"; do
  cp "$tmp/package/$f" "$here/$f"
done
echo "$version $integrity" >"$here/VERSION"
echo "swaggerui: copied $pkg@$version ($integrity); run make test and look at /v1/docs"
