# Init container, model.source: pvc. Seeds an empty model volume with the pinned version, in the
# layout retraining writes: versions/<version>/ and `current`, a relative symlink to it. A volume
# that already has `current` is left alone: from then on retraining promotes versions by swapping it.
# Several pods may seed at once: each stages in its own directory and renames; the loser's copy,
# the same bytes, is dropped. Needs sh, cp, mv -T, ln and sha256sum (GNU coreutils) in the model image.
set -eu
current="$MODEL_ROOT/current"
if [ -e "$current" ]; then
  echo "model volume already seeded: current -> $(readlink "$current" || echo "$current")"
  exit 0
fi
me="${HOSTNAME:-$$}"
version_dir="$MODEL_ROOT/versions/$MODEL_VERSION"
if [ ! -e "$version_dir" ]; then
  staging="$MODEL_ROOT/versions/.seed-$me"
  rm -rf "$staging"
  mkdir -p "$staging"
  cp -R "$MODEL_SOURCE/." "$staging/"
  if ! (cd "$staging" && sha256sum -c --quiet SHA256SUMS); then
    rm -rf "$staging"
    exit 1
  fi
  mv -T "$staging" "$version_dir" 2>/dev/null || rm -rf "$staging"
fi
link="$MODEL_ROOT/.current-seed-$me"
ln -sfn "versions/$MODEL_VERSION" "$link"
mv -T "$link" "$current"
echo "model volume seeded: current -> versions/$MODEL_VERSION"
