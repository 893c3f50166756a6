# Init container, model.source: image. Copies the pinned artifact out of the model image into the
# emptyDir that serve reads as /models/current, and checks its hashes, so that a broken model image
# fails here, visibly, rather than in serve. Needs sh, cp and sha256sum in the model image.
set -eu
dest="$MODEL_ROOT/current"
rm -rf "$dest"
mkdir -p "$dest"
cp -R "$MODEL_SOURCE/." "$dest/"
(cd "$dest" && sha256sum -c --quiet SHA256SUMS)
echo "model $MODEL_VERSION copied to $dest"
