"""Fetch the public datasets into the layout the loaders read (`workbench data download NAME`).

Every file comes with a SHA-256 checksum that is verified after the download: a mismatch removes the file and
raises :class:`DownloadError`. Writes are atomic (a hidden `.part` file in the target folder, renamed once
verified), so an interrupted download never leaves a half file where a loader would read it. `base_url` replaces
the official hosts with one mirror that holds each upstream file at its `mirror_path` (also how the tests serve
fixtures on 127.0.0.1); `file://` URLs work too.

Checksums were computed from the copies in the project's shared data, which are byte-identical to the pinned
upstream commits named in their PROVENANCE.md files. The IMDB tarball's checksum is the published one used by
several dataset libraries (e.g. Julia's MLDatasets), not recomputed here; its conversion into the gzip CSV is
checked by the SHA-256 of the uncompressed CSV, which equals that of the shared copy. A file whose upstream bytes
were never seen here (the Twitter validation file, which upstream has an extra header line) has `sha256=None` and
is checked after conversion instead. BESSTIE (gated on the Hugging Face Hub) and CMU-MOSI / MOSEI cannot be
fetched automatically: `download` raises :class:`ManualDownloadRequired` whose message says how to get them and
where to put the files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from workbench.data.schema import DataError, data_dir

CHUNK = 1 << 16
TIMEOUT_S = 60


class DownloadError(DataError):
    """A download failed: unreachable, HTTP error, checksum mismatch, or a file in the way."""

    def __init__(self, where: str | os.PathLike, problem: str):
        super().__init__(where, None, problem)


class ManualDownloadRequired(DownloadError):
    """The dataset cannot be fetched automatically; the message says how to get it."""


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: where it comes from, where it goes, and how it is checked.

    `sha256` is the checksum of the bytes as downloaded (None if unknown). `convert(downloaded, out)` turns them
    into the target file and returns the SHA-256 of the content it wrote (uncompressed for .gz), which must equal
    `converted_sha256`.
    """

    target: str
    url: str
    sha256: str | None
    mirror_path: str | None = None
    convert: Callable[[Path, Path], str] | None = None
    converted_sha256: str | None = None

    @property
    def path_on_mirror(self) -> str:
        return self.mirror_path or self.target


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset: its files, licence and citation, or manual instructions."""

    name: str
    description: str
    license: str
    files: tuple[RemoteFile, ...] = ()
    manual: str | None = None
    homepage: str = ""


# ---------------------------------------------------------------------------------------------- conversions
def _sha256_file(path: Path, decompress: bool = False) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def drop_first_line(downloaded: Path, out: Path) -> str:
    """Remove a header line that an upstream copy added to a headerless file; returns the SHA-256 of the result."""
    data = downloaded.read_bytes()
    end = data.find(b"\n")
    body = data[end + 1 :] if end >= 0 else b""
    out.write_bytes(body)
    return hashlib.sha256(body).hexdigest()


IMDB_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def imdb_tarball_to_csv(downloaded: Path, out: Path) -> str:
    """Pack `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` into the gzip CSV `review,sentiment,split,file_id,
    rating` (text verbatim, sorted by split, pos before neg, numeric id); returns the SHA-256 of the CSV text.

    Members are read in memory, never extracted, so paths inside the tarball cannot escape the data folder. A
    truncated or corrupt tarball is a DownloadError.
    """
    rows = []
    try:
        with gzip.open(downloaded, "rb") as stream:  # the whole gzip stream first: tarfile stops quietly at a bad
            while stream.read(CHUNK):  # header, but a damaged stream fails its CRC or ends early here
                pass
        with tarfile.open(downloaded, "r:gz") as tar:
            for member in tar:
                match = IMDB_MEMBER.match(member.name)
                if not (member.isfile() and match):
                    continue
                split, polarity, file_id, rating = match.groups()
                handle = tar.extractfile(member)
                try:
                    text = handle.read().decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DownloadError(downloaded, f"{member.name}: cannot decode as utf-8 ({err.reason})") from None
                label = "positive" if polarity == "pos" else "negative"
                rows.append((split != "train", polarity != "pos", int(file_id), [text, label, split, file_id, rating]))
    except DataError:
        raise
    except Exception as err:  # tarfile.ReadError, EOFError (truncated), zlib.error / BadGzipFile (corrupt)
        raise DownloadError(
            downloaded, f"truncated or corrupt .tar.gz ({type(err).__name__}: {err}); download it again"
        ) from None
    if not rows:
        raise DownloadError(downloaded, "no aclImdb/{train,test}/{pos,neg}/*.txt reviews inside the tarball")
    rows.sort(key=lambda row: row[:3])
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["review", "sentiment", "split", "file_id", "rating"])
    writer.writerows(row[3] for row in rows)
    content = buffer.getvalue().encode("utf-8")
    with out.open("wb") as raw, gzip.GzipFile(filename="imdb_50k_aclImdb.csv", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(content)
    return hashlib.sha256(content).hexdigest()


# ---------------------------------------------------------------------------------------------- the sources
AFRISENTI_COMMIT = "5aec3cfcf87b59f885e98641f72e52182776429d"
AFRISENTI_RAW = f"https://raw.githubusercontent.com/afrisenti-semeval/afrisent-semeval-2023/{AFRISENTI_COMMIT}/data"
# sha256 of data/<lang>/<split>.tsv at that commit (orm and tir train are the same 11-byte header-only stub)
AFRISENTI_SHA256 = {
    "amh": {
        "train": "70408ef3dc742039d23347fa8d8ef553a01de4624c67153259d8f5223de84fca",
        "dev": "b5b803b7591eb8b45710131f8ea263d369794ff5e681b327c5a605df01c796f8",
        "test": "a3b2425d20af63371c20dd8c5248ffec7317454a7bad513fa58e00de81669819",
    },
    "arq": {
        "train": "edeaea0e5e57564428b1b4a17a4429381b3f2fa933000d2a6dddf83573e57745",
        "dev": "07aa053e2d12daca7fae4ca5dcbbeb13944d752bdcbb46bfd7ca3760e5e2d5ee",
        "test": "e3d32cbc57bb681b20300e2abd58feae802a0e7d0de157e694332911d85a63f0",
    },
    "ary": {
        "train": "9cf4e642bd8425e506192c161e22498e4867c7cc9814ea5bae7e2182b87c9c2b",
        "dev": "03c4b5612080aeb7011b2d893504ccd6cd0d0aca329dd3ba34ba7defc170cd60",
        "test": "1bef08f24090d001c7443c9a90781609901608361dd9a3f8a93dbf3fa68a2417",
    },
    "hau": {
        "train": "0a125f4528d1ae86b112ec5d3d66312fcb154883a5a021c6ab913cd2ce877d87",
        "dev": "6f895e66fb732b45fad926315841c41da8fc03dde2aef3a5386183bdcf15221b",
        "test": "29b2193808935c459e323b4434f9d1e1968883eed273617f43510b7127a3fa0a",
    },
    "ibo": {
        "train": "6f0fb58fbaff2401d8944d41bae53cc7dafe1ccae7de42a81915ddc974abb300",
        "dev": "a52e7248af999b65a7d49e11d781b08c2528411ef25d8b9419c7e6280622e8f8",
        "test": "b91481b377e96b394b96e04dd2577c335fe117e03271dcbf0f4da2a7b785b92f",
    },
    "kin": {
        "train": "49aa49824b6baee98357ec7687e4ff8f41aa47d041f0587bca560eba1ba9ddc2",
        "dev": "b7e762056fbaa89f642f3f47c25f631950873c67fe24bb17528a930f4eb60031",
        "test": "b3656d35cf543750d3d481c1088248117f3f908d1fb6e5ae73795c62bd407e37",
    },
    "orm": {
        "train": "ddacc2d1fadf8a261136217bb99ecc53790e97b65b20ac3591595a6fbd9d9991",
        "dev": "38ec2d527b6b0619c63a5bb485f1f8ff8a76117045f15d8b4d2173722d982a9f",
        "test": "225425705a7db79b2ae9ed01e91ad07e1ae20fcccf2461f8744352a63c1d5fb3",
    },
    "pcm": {
        "train": "87622392d18358005b046a5f01a966d6c4f96635cdda2a6e6a212ba5b7580647",
        "dev": "d7635a8b2b41f02c96f5edb3b8694ba2ec2dcf2e4bfc01eee169d70dd1603c71",
        "test": "35e94e674b8642f5ee4b2cff32fca9b29821ee8d243ae2b177049a82ae95a4b0",
    },
    "por": {
        "train": "d094d67da5e826814feddd7fcf23ca531ff6b74b0608919296a5f11f241df9c6",
        "dev": "72fb2a9c88a5d7affb22635688b1ca71bd82865b50edc9d2cce8694098b37c03",
        "test": "384b639d1afb2aeb90ab3cecf6e53f209426c4aed06102929713d58ffacb1257",
    },
    "swa": {
        "train": "d0cd654eeb84dae25e3fe8521ac88a1004cdd625e0fe90e7ab9a039a6655e431",
        "dev": "ef91098b77b5137e093fb78d7a0cc3bd4c561ba1f87dc86fdccbc16b4807f2af",
        "test": "1720b2a4dedce37e64b5820420a5de78caf66eaf2102f9cf276faba3a8261eb1",
    },
    "tir": {
        "train": "ddacc2d1fadf8a261136217bb99ecc53790e97b65b20ac3591595a6fbd9d9991",
        "dev": "a5967555b3bfb756af6eef062f325dc521a5ddb11b59893d9f78dd40ef9fb35f",
        "test": "9414da61ab09be8cdf88173b2a48f77a9698c780f1b93e1d6b121faf5638d96c",
    },
    "tso": {
        "train": "d566a1f6246de1a9f28acbdb7fb67d61115c0f99d1bee77f5251f0d9ac8c85bc",
        "dev": "101af3fbd8011f1a65bba75401bba67b5bf92d5703314da95d9db89109aea65f",
        "test": "8e36b83e1e076de1c216c862bc14e9163b099d3948ddce842268c074c5c7b4ec",
    },
    "twi": {
        "train": "ef84e021b46d9d26bbbf264872323b98e78a89a2b392ef8083f7e32e2e0a19a0",
        "dev": "964ad959785d814f8ec4aec472ffd19971e2e85ae304b201de896983ad3a41d7",
        "test": "956fe49d7ab3a0db758430def5d579a53b1245d7bccfe3a96516a0ce3b1ba466",
    },
    "yor": {
        "train": "2ef112428030c5b209178b8fdb479f83152c75dcd9279726937968e9093270b0",
        "dev": "1a48880716ef3e697b1ce9bcde6a3c63d9f59afb7fe217fc882cf2e330e60100",
        "test": "e323bfea0c888675e8b3e51413e9e4612ead674fc3d9d3a8c5485175adf88e1e",
    },
}

TWITTER_TRAIN_URL = (
    "https://raw.githubusercontent.com/Agnika0987/PRODIGY_DS_04/959b3f304ed738bb550ed4bc190330c50249af49/"
    "twitter_training.csv.zip"
)
TWITTER_VALID_URL = (
    "https://raw.githubusercontent.com/DrishtiGautam8/Prodigy_DS_04/f4deaf63871fbf96903226c41f1c911c844005f5/"
    "twitter_validation.csv"
)
BICODEMIX_URL = (
    "https://raw.githubusercontent.com/suhayryz/public_security_sa/a48e17aec8dee7752bb03771f00886ac98a2ba25/"
    "annotated_bicodemix_publicsa_v2.csv"
)
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"

BESSTIE_MANUAL = """BESSTIE is gated on the Hugging Face Hub ("available on request"): no anonymous download.
  1. Open https://huggingface.co/datasets/unswnlporg/BESSTIE, sign in and request access (the authors approve it).
  2. Once approved: `huggingface-cli login`, then
     `huggingface-cli download unswnlporg/BESSTIE --repo-type dataset --local-dir <download folder>`.
  3. Put the files under {root}/besstie/ as the loaders expect:
     valid.csv                               official validation split, long format: text,label,variety,source,task
     original_train_en-AU_en-UK.csv          official train split for en-AU/en-UK, wide format:
                                             example_id,source,variety,text,sentiment,sarcasm,subset,original_split
     splits_en-IN_Reddit_cm/<Task>/train_cm.csv  en-IN Reddit train rows: id,text,label,is_cm (Task = Sentiment|Sarcasm)
     Keep the official long-format train.csv there too if you get it: the loaders read the files above, and
     build en-IN Google train/valid as a seeded stratified split of that slice's validation rows.
  Cite Srirag et al., "BESSTIE", Findings of ACL 2025; research use only (no licence published)."""

MOSI_MANUAL = """CMU-MOSI / CMU-MOSEI are distributed by CMU through the CMU-MultimodalSDK, not as single files.
  1. `pip install git+https://github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK` (package `mmsdk`).
  2. In Python: `from mmsdk import mmdatasdk;
     mmdatasdk.mmdataset(mmdatasdk.cmu_mosi.highlevel, "<folder>")` (or `cmu_mosei.highlevel`, plus `.labels`),
     which downloads the computational sequences (.csd, HDF5) with their own checksums.
  3. Put them under {root}/multimodal/ (MOSEI: pass the .csd or MMSA-style pickle path to the multimodal loaders).
     The MOSI utterance features used here (multimodal/cmu_mosi/mosi_bclstm_utterances.npz) are derived from the
     bc-LSTM release in github.com/declare-lab/multimodal-deep-learning (bc-LSTM/data); see that folder's
     PROVENANCE.md for how they were joined.
  Research use; cite Zadeh et al. 2016 (MOSI) / 2018 (MOSEI)."""


def _afrisenti_files() -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"afrisenti/{lang}/{split}.tsv", f"{AFRISENTI_RAW}/{lang}/{split}.tsv", sha)
        for lang, splits in AFRISENTI_SHA256.items()
        for split, sha in splits.items()
    )


SOURCES: dict[str, DatasetSource] = {
    source.name: source
    for source in (
        DatasetSource(
            "afrisenti",
            "AfriSenti (SemEval-2023 Task 12): 14 African languages, train/dev/test TSV",
            "CC BY 4.0",
            _afrisenti_files(),
            homepage="https://github.com/afrisenti-semeval/afrisent-semeval-2023",
        ),
        DatasetSource(
            "imdb",
            "IMDB Large Movie Review Dataset v1.0 (aclImdb), 25k/25k reviews, packed into one gzip CSV",
            "none stated; cite Maas et al. 2011",
            (
                RemoteFile(
                    "imdb/imdb_50k_aclImdb.csv.gz",
                    IMDB_URL,
                    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
                    mirror_path="imdb/aclImdb_v1.tar.gz",
                    convert=imdb_tarball_to_csv,
                    converted_sha256="ba212cc37a00adedd3dbb8496f4cc5da58d3ab7187803812f95adf9f2e654be4",
                ),
            ),
            homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
        ),
        DatasetSource(
            "twitter_entity_sentiment",
            "Twitter entity sentiment (Kaggle twitter_training / twitter_validation), headerless CSV",
            "none stated (Kaggle)",
            (
                RemoteFile(
                    "twitter_entity_sentiment/twitter_training.csv.zip",
                    TWITTER_TRAIN_URL,
                    "a9155f1cd9d8ac9051ad812df94e266ed7aa6daf51e01a86d8022a3c673bab50",
                ),
                RemoteFile(
                    "twitter_entity_sentiment/twitter_validation.csv",
                    TWITTER_VALID_URL,
                    None,  # that copy has an added header line; the result (Kaggle's headerless file) is checked
                    convert=drop_first_line,
                    converted_sha256="f06b0791cca4c977bdf5093678a704ba97fcb7fc592c963c45424346f80136f1",
                ),
            ),
            homepage="https://www.kaggle.com/datasets/jp797498e/twitter-entity-sentiment-analysis",
        ),
        DatasetSource(
            "bicodemix",
            "Bicodemix: English-Malay code-mixed comments, sentiment + sarcasm, one CSV (no official split)",
            "GPL-3.0 (repository licence); cite Suhaimin et al., Data in Brief 55, 2024",
            (
                RemoteFile(
                    "bicodemix/annotated_bicodemix_publicsa_v2.csv",
                    BICODEMIX_URL,
                    "f1022a08e8e74cc79dc377e1b2fc280171c8698f2ba6fd2f0d9611b044b373e2",
                ),
            ),
            homepage="https://github.com/suhayryz/public_security_sa",
        ),
        DatasetSource(
            "besstie",
            "BESSTIE: sentiment and sarcasm for en-AU / en-IN / en-UK (gated: manual download)",
            "none published; research use",
            manual=BESSTIE_MANUAL,
            homepage="https://huggingface.co/datasets/unswnlporg/BESSTIE",
        ),
        DatasetSource(
            "mosi",
            "CMU-MOSI / CMU-MOSEI multimodal sentiment (manual: CMU-MultimodalSDK)",
            "CMU research licence",
            manual=MOSI_MANUAL,
            homepage="https://github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK",
        ),
    )
}


# ---------------------------------------------------------------------------------------------- downloading
def _content_sha256(remote: RemoteFile, path: Path) -> str:
    return _sha256_file(path, decompress=remote.convert is not None and path.suffix == ".gz")


def _expected(remote: RemoteFile) -> str | None:
    return remote.converted_sha256 if remote.convert else remote.sha256


def _fetch(url: str, part: Path, label: str, progress: bool) -> str:
    """Stream `url` into `part`, returning the SHA-256 of the bytes."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, part.open("wb") as out:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True, desc=label, disable=not progress
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise DownloadError(url, f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(url, f"cannot download ({reason}); offline? use --base-url to point at a mirror") from None
    return digest.hexdigest()


def _download_one(remote: RemoteFile, root: Path, base_url: str | None, force: bool, progress: bool) -> Path:
    target = root / remote.target
    expected = _expected(remote)
    if target.exists() and not force:
        try:
            present = None if expected is None else _content_sha256(remote, target)
        except Exception as err:  # a truncated or corrupt .gz already in place
            raise DownloadError(
                target, f"exists but cannot be read ({type(err).__name__}: {err}); use --force to replace it"
            ) from None
        if expected is None or present == expected:
            return target
        raise DownloadError(target, "exists but its checksum differs from the release; use --force to replace it")
    url = f"{base_url.rstrip('/')}/{remote.path_on_mirror}" if base_url else remote.url
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")  # same folder, so the final rename is atomic
    converted = target.with_name(f".{target.name}.converted")
    try:
        got = _fetch(url, part, target.name, progress)
        if remote.sha256 is not None and got != remote.sha256:
            raise DownloadError(url, f"checksum mismatch: expected sha256 {remote.sha256}, got {got}; file removed")
        if remote.convert is not None:
            try:
                got = remote.convert(part, converted)
            except DataError as err:  # name what was downloaded, not the temporary file (removed below)
                raise DownloadError(url, err.problem) from None
            if remote.converted_sha256 is not None and got != remote.converted_sha256:
                raise DownloadError(
                    url,
                    f"checksum mismatch after conversion: expected {remote.converted_sha256}, got {got}; file removed",
                )
            os.replace(converted, target)
        else:
            os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
        converted.unlink(missing_ok=True)
    return target


def download(
    name: str,
    root: str | os.PathLike | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Download dataset `name` (a key of SOURCES) into the data root and return the paths of its files.

    Files already present with the right checksum are kept unless `force`; a present file with another checksum
    is an error (nothing is overwritten without `force`). Raises DownloadError (HTTP error, unreachable host,
    checksum mismatch) or ManualDownloadRequired (gated or SDK-only datasets; the message says what to do).
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(SOURCES)}")
    source = SOURCES[name]
    root_path = data_dir(root)
    if source.manual:
        raise ManualDownloadRequired(source.homepage or name, source.manual.format(root=root_path))
    return [_download_one(remote, root_path, base_url, force, progress) for remote in source.files]
