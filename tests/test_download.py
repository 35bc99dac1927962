"""`workbench data download` against fixture files served by http.server on 127.0.0.1: success, checksum mismatch,
HTTP 404, conversions (IMDB tarball, Twitter header), truncated or corrupt archives, atomic writes; and the real
checksums against the real files."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

import workbench.data.download as dl
from workbench.data import DataError, load_afrisenti, load_imdb, load_twitter_entity
from workbench.data.download import SOURCES, DownloadError, ManualDownloadRequired, download


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Mirror:
    """A folder served over HTTP on 127.0.0.1 in a background thread, recording the paths requested."""

    def __init__(self, folder: Path):
        self.folder, self.requests = folder, []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                mirror.requests.append(self.path)
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def put(self, relative: str, data: bytes) -> None:
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def mirror(tmp_path):
    server = Mirror(tmp_path / "mirror")
    server.folder.mkdir()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def only(name: str, *files: dl.RemoteFile) -> dict[str, dl.DatasetSource]:
    """SOURCES with dataset `name` reduced to `files` (real URLs and paths, fixture checksums)."""
    return {**SOURCES, name: dataclasses.replace(SOURCES[name], files=files)}


def afrisenti_files(fixture_data_dir: Path, mirror: Mirror, languages=("kin", "swa")) -> tuple[dl.RemoteFile, ...]:
    files = []
    for remote in SOURCES["afrisenti"].files:
        if remote.target.split("/")[1] in languages:
            data = (fixture_data_dir / remote.target).read_bytes()
            mirror.put(remote.path_on_mirror, data)
            files.append(dataclasses.replace(remote, sha256=sha256(data)))
    return tuple(files)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".part", ".converted"))]


def test_download_writes_the_layout_and_skips_present_files(fixture_data_dir, mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "SOURCES", only("afrisenti", *afrisenti_files(fixture_data_dir, mirror)))
    root = tmp_path / "data"
    paths = download("afrisenti", root=root, base_url=mirror.url, progress=False)
    assert paths == [
        root / "afrisenti" / lang / f"{split}.tsv" for lang in ("kin", "swa") for split in ("train", "dev", "test")
    ]
    for path in paths:
        assert path.read_bytes() == (fixture_data_dir / path.relative_to(root)).read_bytes()
    assert mirror.requests == [
        f"/afrisenti/{lang}/{split}.tsv" for lang in ("kin", "swa") for split in ("train", "dev", "test")
    ]
    pd.testing.assert_frame_equal(
        load_afrisenti("kin", "dev", root=root).drop(columns="line"),
        load_afrisenti("kin", "dev", root=fixture_data_dir).drop(columns="line"),
    )
    assert download("afrisenti", root=root, base_url=mirror.url, progress=False) == paths
    assert len(mirror.requests) == 6  # verified present files are not fetched again
    download("afrisenti", root=root, base_url=mirror.url, force=True, progress=False)
    assert len(mirror.requests) == 12
    assert leftovers(root) == []


def test_checksum_mismatch_removes_the_file(fixture_data_dir, mirror, tmp_path, monkeypatch):
    good = afrisenti_files(fixture_data_dir, mirror, languages=("kin",))
    bad = dataclasses.replace(good[1], sha256="0" * 64)
    monkeypatch.setattr(dl, "SOURCES", only("afrisenti", good[0], bad, good[2]))
    root = tmp_path / "data"
    with pytest.raises(
        DownloadError, match=r"afrisenti/kin/dev.tsv: checksum mismatch: expected sha256 0{64}, got"
    ) as err:
        download("afrisenti", root=root, base_url=mirror.url, progress=False)
    assert err.value.path == f"{mirror.url}/afrisenti/kin/dev.tsv"
    assert (root / "afrisenti" / "kin" / "train.tsv").is_file()  # the file before it is kept (it was verified)
    assert not (root / "afrisenti" / "kin" / "dev.tsv").exists()
    assert leftovers(root) == []


def test_http_404_is_a_clear_error_and_leaves_nothing(fixture_data_dir, mirror, tmp_path, monkeypatch):
    files = afrisenti_files(fixture_data_dir, mirror, languages=("kin",))
    (mirror.folder / files[0].path_on_mirror).unlink()
    monkeypatch.setattr(dl, "SOURCES", only("afrisenti", *files))
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"afrisenti/kin/train.tsv: HTTP 404 "):
        download("afrisenti", root=root, base_url=mirror.url, progress=False)
    assert not (root / "afrisenti" / "kin" / "train.tsv").exists() and leftovers(root) == []


def test_unreachable_host_says_offline(tmp_path, monkeypatch):
    remote = dataclasses.replace(SOURCES["bicodemix"].files[0], sha256=None)
    monkeypatch.setattr(dl, "SOURCES", only("bicodemix", remote))
    with pytest.raises(DownloadError, match="cannot download .*offline"):
        download("bicodemix", root=tmp_path, base_url="http://127.0.0.1:9", progress=False)  # discard port: closed


def test_present_file_with_another_checksum_needs_force(fixture_data_dir, mirror, tmp_path, monkeypatch):
    files = afrisenti_files(fixture_data_dir, mirror, languages=("kin",))
    monkeypatch.setattr(dl, "SOURCES", only("afrisenti", *files))
    edited = tmp_path / "afrisenti" / "kin" / "train.tsv"
    edited.parent.mkdir(parents=True)
    edited.write_text("tweet\tlabel\nmy own edit\tpositive\n")
    with pytest.raises(DownloadError, match="exists but its checksum differs.*--force"):
        download("afrisenti", root=tmp_path, base_url=mirror.url, progress=False)
    assert edited.read_text().endswith("my own edit\tpositive\n")
    download("afrisenti", root=tmp_path, base_url=mirror.url, force=True, progress=False)
    assert edited.read_bytes() == (fixture_data_dir / "afrisenti" / "kin" / "train.tsv").read_bytes()


def aclimdb_tarball(rows: pd.DataFrame) -> bytes:
    """An aclImdb_v1.tar.gz holding the given reviews as `aclImdb/<split>/<pos|neg>/<id>_<rating>.txt`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for row in rows.sample(frac=1, random_state=0).itertuples():  # archive order must not matter
            folder = "pos" if row.sentiment == "positive" else "neg"
            data = row.review.encode("utf-8")
            info = tarfile.TarInfo(f"aclImdb/{row.split}/{folder}/{row.file_id}_{row.rating}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        readme = b"Large Movie Review Dataset v1.0\n"
        info = tarfile.TarInfo("aclImdb/README")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return buffer.getvalue()


def test_imdb_tarball_is_converted_to_the_gzip_csv(fixture_data_dir, mirror, tmp_path, monkeypatch):
    packed = fixture_data_dir / "imdb" / "imdb_50k_aclImdb.csv.gz"
    rows = pd.read_csv(packed, dtype=str, keep_default_na=False)
    tarball = aclimdb_tarball(rows)
    remote = SOURCES["imdb"].files[0]
    mirror.put(remote.path_on_mirror, tarball)
    csv_sha = sha256(gzip.decompress(packed.read_bytes()))
    monkeypatch.setattr(
        dl, "SOURCES", only("imdb", dataclasses.replace(remote, sha256=sha256(tarball), converted_sha256=csv_sha))
    )
    (path,) = download("imdb", root=tmp_path, base_url=mirror.url, progress=False)
    assert path == tmp_path / "imdb" / "imdb_50k_aclImdb.csv.gz"
    assert mirror.requests == ["/imdb/aclImdb_v1.tar.gz"]
    # byte-identical content to the released layout (same check as the real conversion's checksum)
    assert gzip.decompress(path.read_bytes()) == gzip.decompress(packed.read_bytes())
    pd.testing.assert_frame_equal(
        load_imdb("all", root=tmp_path).drop(columns="line"),
        load_imdb("all", root=fixture_data_dir).drop(columns="line"),
    )
    assert leftovers(tmp_path) == []


def test_conversion_checksum_mismatch_removes_the_result(fixture_data_dir, mirror, tmp_path, monkeypatch):
    rows = pd.read_csv(fixture_data_dir / "imdb" / "imdb_50k_aclImdb.csv.gz", dtype=str, keep_default_na=False)
    tarball = aclimdb_tarball(rows.iloc[:-1])  # one review missing
    remote = SOURCES["imdb"].files[0]
    mirror.put(remote.path_on_mirror, tarball)
    csv_sha = sha256(gzip.decompress((fixture_data_dir / "imdb" / "imdb_50k_aclImdb.csv.gz").read_bytes()))
    monkeypatch.setattr(dl, "SOURCES", only("imdb", dataclasses.replace(remote, sha256=None, converted_sha256=csv_sha)))
    with pytest.raises(DownloadError, match="checksum mismatch after conversion"):
        download("imdb", root=tmp_path, base_url=mirror.url, progress=False)
    assert not (tmp_path / "imdb" / "imdb_50k_aclImdb.csv.gz").exists() and leftovers(tmp_path) == []


def test_twitter_validation_header_line_is_dropped(fixture_data_dir, mirror, tmp_path, monkeypatch):
    kaggle = (fixture_data_dir / "twitter_entity_sentiment" / "twitter_validation.csv").read_bytes()
    remote = SOURCES["twitter_entity_sentiment"].files[1]
    mirror.put(remote.path_on_mirror, b"Tweet_ID,entity,sentiment,tweet_content\r\n" + kaggle)  # the upstream copy
    monkeypatch.setattr(
        dl, "SOURCES", only("twitter_entity_sentiment", dataclasses.replace(remote, converted_sha256=sha256(kaggle)))
    )
    (path,) = download("twitter_entity_sentiment", root=tmp_path, base_url=mirror.url, progress=False)
    assert path.read_bytes() == kaggle
    assert (
        len(load_twitter_entity("valid", labels=("Negative", "Neutral", "Positive", "Irrelevant"), root=tmp_path)) == 40
    )


def test_file_urls_work_as_a_mirror(fixture_data_dir, tmp_path, monkeypatch):
    remote = SOURCES["bicodemix"].files[0]
    data = (fixture_data_dir / remote.target).read_bytes()
    mirror = tmp_path / "mirror"
    (mirror / "bicodemix").mkdir(parents=True)
    (mirror / remote.path_on_mirror).write_bytes(data)
    monkeypatch.setattr(dl, "SOURCES", only("bicodemix", dataclasses.replace(remote, sha256=sha256(data))))
    (path,) = download("bicodemix", root=tmp_path / "data", base_url=mirror.as_uri(), progress=False)
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    "name,needle", [("besstie", "huggingface.co/datasets/unswnlporg/BESSTIE"), ("mosi", "CMU-MultimodalSDK")]
)
def test_gated_datasets_explain_the_manual_steps(tmp_path, name, needle):
    with pytest.raises(ManualDownloadRequired) as err:
        download(name, root=tmp_path)
    assert needle in err.value.problem and str(tmp_path) in err.value.problem
    assert not any(tmp_path.iterdir())


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ValueError, match="unknown dataset 'sst2'; downloadable: afrisenti, imdb"):
        download("sst2")


def test_every_automatic_file_has_a_checksum_to_verify():
    for source in SOURCES.values():
        assert bool(source.files) != bool(source.manual), source.name
        for remote in source.files:
            assert remote.sha256 or remote.converted_sha256, remote.target
            assert remote.url.startswith("https://"), remote.url
    assert len(SOURCES["afrisenti"].files) == 14 * 3


@pytest.mark.real_data
def test_real_files_match_the_recorded_checksums(real_data_dir):
    checked = 0
    for source in SOURCES.values():
        for remote in source.files:
            path = real_data_dir / remote.target
            if not path.is_file():
                continue
            expected = remote.converted_sha256 if remote.convert else remote.sha256
            assert dl._content_sha256(remote, path) == expected, remote.target
            checked += 1
    assert checked == 42 + 1 + 2 + 1


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not a tarball"])
def test_broken_imdb_tarball_is_a_clear_error_and_leaves_nothing(
    fixture_data_dir, mirror, tmp_path, monkeypatch, damage
):
    rows = pd.read_csv(fixture_data_dir / "imdb" / "imdb_50k_aclImdb.csv.gz", dtype=str, keep_default_na=False)
    tarball = aclimdb_tarball(rows)
    middle = len(tarball) // 2
    broken = {
        "truncated": tarball[:middle],
        "corrupt": tarball[:middle] + bytes(b ^ 0x5A for b in tarball[middle : middle + 64]) + tarball[middle + 64 :],
        "not a tarball": gzip.compress(b"<html>rate limited</html>"),
    }[damage]
    remote = SOURCES["imdb"].files[0]
    mirror.put(remote.path_on_mirror, broken)
    monkeypatch.setattr(dl, "SOURCES", only("imdb", dataclasses.replace(remote, sha256=None)))
    with pytest.raises(DownloadError) as err:
        download("imdb", root=tmp_path, base_url=mirror.url, progress=False)
    assert err.value.path == f"{mirror.url}/{remote.path_on_mirror}"
    assert "truncated or corrupt .tar.gz" in err.value.problem and "download it again" in err.value.problem
    assert not (tmp_path / "imdb" / "imdb_50k_aclImdb.csv.gz").exists() and leftovers(tmp_path) == []


def test_truncated_gzip_already_in_place_needs_force(fixture_data_dir, tmp_path, monkeypatch):
    packed = (fixture_data_dir / "imdb" / "imdb_50k_aclImdb.csv.gz").read_bytes()
    target = tmp_path / "imdb" / "imdb_50k_aclImdb.csv.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DownloadError, match="exists but cannot be read .*EOFError.*use --force") as err:
        download("imdb", root=tmp_path, progress=False)
    assert err.value.path == str(target)
    with pytest.raises(DataError, match="truncated or corrupt gzip file .*workbench data download imdb") as err:
        load_imdb("train", root=tmp_path)
    assert err.value.path == str(target) and err.value.line is None
