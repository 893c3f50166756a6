"""Model artifact verification: every hash checked, anything off refused with ArtifactError."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from service.artifact import (CHECKSUM_FILE, REQUIRED_FILES, ArtifactError, load_artifact, read_checksums,
                              sha256_file, write_checksums)

LABELS = {"version": 1, "labels": {"normal": "Nothing is wrong.", "app_error": "An application error."}}
CONFIG = {"model_version": "test-1", "max_length": 48}
EXTRA_FILES = ("metrics.json", "model_card.md")


@pytest.fixture
def artifact_dir(tmp_path_factory):
    # Not under tmp_path: its name holds the test's name, which error-message matches could hit.
    d = tmp_path_factory.mktemp("artifact")
    (d / "model.onnx").write_bytes(bytes(range(256)) * 4)
    (d / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    (d / "labels.json").write_text(json.dumps(LABELS))
    (d / "config.json").write_text(json.dumps(CONFIG))
    (d / "metrics.json").write_text(json.dumps({"macro_f1": 0.5}))
    (d / "model_card.md").write_text("# test model\n")
    sums = write_checksums(d)
    assert set(sums) == set(REQUIRED_FILES) | set(EXTRA_FILES)
    return d


def test_load_succeeds(artifact_dir):
    art = load_artifact(artifact_dir)
    assert art.taxonomy.labels == ("normal", "app_error")
    assert art.config == CONFIG
    assert art.version == "test-1"
    assert art.max_length == 48
    assert art.file("model.onnx") == artifact_dir / "model.onnx"
    assert load_artifact(str(artifact_dir)).path == artifact_dir


def test_checksum_file_format(artifact_dir):
    lines = (artifact_dir / CHECKSUM_FILE).read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names == sorted(set(REQUIRED_FILES) | set(EXTRA_FILES))
    for line in lines:
        digest, name = line.split("  ", 1)
        assert digest == sha256_file(artifact_dir / name)
    assert read_checksums(artifact_dir) == {n: sha256_file(artifact_dir / n) for n in names}


def test_write_checksums_does_not_hash_itself(artifact_dir):
    write_checksums(artifact_dir)  # again, with SHA256SUMS now present
    assert CHECKSUM_FILE not in read_checksums(artifact_dir)
    load_artifact(artifact_dir)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum command")
def test_sha256sum_c_accepts_the_file(artifact_dir):
    ok = subprocess.run(["sha256sum", "--strict", "-c", CHECKSUM_FILE], cwd=artifact_dir,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # And it notices tampering too, so the check above is not vacuous.
    with open(artifact_dir / "config.json", "a") as f:
        f.write(" ")
    bad = subprocess.run(["sha256sum", "-c", CHECKSUM_FILE], cwd=artifact_dir, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "config.json: FAILED" in bad.stdout


@pytest.mark.parametrize("name", REQUIRED_FILES + EXTRA_FILES)
def test_one_flipped_byte_is_refused(artifact_dir, name):
    path = artifact_dir / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifact(artifact_dir)


@pytest.mark.parametrize("name", REQUIRED_FILES + EXTRA_FILES)
def test_truncated_file_is_refused(artifact_dir, name):
    path = artifact_dir / name
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifact(artifact_dir)


@pytest.mark.parametrize("name", REQUIRED_FILES + EXTRA_FILES)
def test_deleted_listed_file_is_refused(artifact_dir, name):
    (artifact_dir / name).unlink()
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifact(artifact_dir)


def test_missing_checksum_file_is_refused(artifact_dir):
    (artifact_dir / CHECKSUM_FILE).unlink()
    with pytest.raises(ArtifactError, match=CHECKSUM_FILE):
        load_artifact(artifact_dir)


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_checksums_must_cover_required_files(artifact_dir, name):
    path = artifact_dir / CHECKSUM_FILE
    kept = [line for line in path.read_text().splitlines() if not line.endswith("  " + name)]
    path.write_text("".join(line + "\n" for line in kept))
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifact(artifact_dir)


def test_required_file_missing_before_checksumming_is_refused(artifact_dir):
    (artifact_dir / "model.onnx").unlink()
    write_checksums(artifact_dir)  # consistent sums, but model.onnx is not among them
    with pytest.raises(ArtifactError, match=r"model\.onnx"):
        load_artifact(artifact_dir)


@pytest.mark.parametrize("bad_line", [
    "not a checksum line",
    "abc123  model.onnx",                         # digest too short
    "0" * 64 + " model.onnx",                     # one space
    "0" * 65 + "  model.onnx",                    # digest too long
    "0" * 64 + "  ../model.onnx",                 # path outside the directory
    "0" * 64 + "  sub/model.onnx",
    "",                                           # blank line
])
def test_malformed_checksum_line_is_refused(artifact_dir, bad_line):
    path = artifact_dir / CHECKSUM_FILE
    path.write_text(path.read_text() + bad_line + "\n")
    with pytest.raises(ArtifactError, match="malformed checksum line"):
        load_artifact(artifact_dir)


def test_wrong_digest_for_a_file_is_refused(artifact_dir):
    path = artifact_dir / CHECKSUM_FILE
    lines = path.read_text().splitlines()
    lines = [("f" * 64 + "  tokenizer.json") if line.endswith("  tokenizer.json") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArtifactError, match=r"tokenizer\.json"):
        load_artifact(artifact_dir)


def test_not_a_directory(tmp_path):
    with pytest.raises(ArtifactError):
        load_artifact(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError):
        load_artifact(tmp_path / "file")


@pytest.mark.parametrize("name, content", [
    ("labels.json", "{not json"),
    ("labels.json", json.dumps({"version": 1, "labels": {"app_error": "no normal label"}})),
    ("labels.json", json.dumps({"version": 1, "labels": {}})),
    ("config.json", "{not json"),
    ("config.json", json.dumps(["not", "a", "dict"])),
])
def test_bad_labels_or_config_with_valid_hashes_is_refused(artifact_dir, name, content):
    (artifact_dir / name).write_text(content)
    write_checksums(artifact_dir)  # the hashes are right; the content is not
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifact(artifact_dir)
