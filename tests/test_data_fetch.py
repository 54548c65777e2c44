"""`hildif data fetch` against a local HTTP server (127.0.0.1) that serves small fixture files."""

import hashlib
import http.server
import json
import threading
import zipfile
from functools import partial

import pytest

from hildif.cli import main
from hildif.data.fetch import FetchError, fetch, file_digests

HANS = ("gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\t"
        "sentence2\tpairID\theuristic\tsubcase\ttemplate\n"
        "entailment\t\t\t\t\tThe doctor saw the cat .\tThe doctor saw .\tex1\tsubsequence\tsn_NP/S\ttemp1\n")


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "hans.txt").write_text(HANS)
    with zipfile.ZipFile(root / "MNLI.zip", "w") as z:
        z.writestr("MNLI/dev_matched.tsv", "sentence1\tsentence2\tgold_label\na\tb\tneutral\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()


def manifest(tmp_path, entries):
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"files": entries}))
    return p


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_fetch_verifies_sha256_and_git_blob_and_extracts(server, tmp_path):
    root, url, _ = server
    data = (root / "hans.txt").read_bytes()
    zdata = (root / "MNLI.zip").read_bytes()
    m = manifest(tmp_path, [
        {"name": "hans", "url": f"{url}/hans.txt", "dest": "hans/h.txt", "git_blob_sha1": git_blob(data)},
        {"name": "mnli", "url": f"{url}/MNLI.zip", "dest": "mnli/MNLI.zip",
         "sha256": hashlib.sha256(zdata).hexdigest(), "extract": {"MNLI/dev_matched.tsv": "mnli/dev.tsv"}},
    ])
    dest = tmp_path / "data"
    report = fetch(dest, m)
    assert [r["status"] for r in report] == ["verified", "verified"]
    assert (dest / "hans/h.txt").read_bytes() == data
    assert file_digests(dest / "hans/h.txt").git_blob_sha1 == git_blob(data)
    assert (dest / "mnli/dev.tsv").read_text().startswith("sentence1")
    # a second fetch finds the files in place and downloads nothing
    (root / "hans.txt").unlink()
    assert fetch(dest, m, only=["hans"])[0]["status"] == "present-verified"


def test_digest_mismatch_leaves_nothing_behind(server, tmp_path):
    _, url, _ = server
    m = manifest(tmp_path, [{"name": "hans", "url": f"{url}/hans.txt", "dest": "hans/h.txt", "sha256": "0" * 64}])
    with pytest.raises(FetchError, match="sha256 mismatch: expected 0000"):
        fetch(tmp_path / "data", m)
    assert not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


def test_unpinned_file_is_refused_unless_allowed(server, tmp_path):
    root, url, _ = server
    m = manifest(tmp_path, [{"name": "hans", "url": f"{url}/hans.txt", "dest": "h.txt", "sha256": None}])
    sha = hashlib.sha256((root / "hans.txt").read_bytes()).hexdigest()
    with pytest.raises(FetchError, match=f"no digest is pinned.*{sha}"):
        fetch(tmp_path / "data", m)
    assert fetch(tmp_path / "data", m, allow_unverified=True)[0]["status"] == "unverified"


def test_http_error_and_bad_manifest(server, tmp_path):
    _, url, _ = server
    m = manifest(tmp_path, [{"name": "x", "url": f"{url}/missing.txt", "dest": "x.txt", "sha256": "0" * 64}])
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(tmp_path / "data", m)
    bad = manifest(tmp_path, [{"name": "x", "url": "u"}])
    with pytest.raises(FetchError, match="lacks field 'dest'"):
        fetch(tmp_path / "data", bad)


def test_cli_fetch_then_check(server, tmp_path, capsys):
    root, url, _ = server
    data = (root / "hans.txt").read_bytes()
    m = manifest(tmp_path, [{"name": "hans", "url": f"{url}/hans.txt", "dest": "hans/h.txt",
                             "sha256": hashlib.sha256(data).hexdigest()}])
    assert main(["data", "fetch", "--dest", str(tmp_path / "d"), "--manifest", str(m)]) == 0
    assert main(["data", "check", str(tmp_path / "d/hans/h.txt")]) == 0
    out = capsys.readouterr().out
    assert '"loaded": 1' in out and '"entailment": 1' in out
