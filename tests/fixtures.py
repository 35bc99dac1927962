"""A small data tree in the real on-disk formats of every text dataset, for tests and the `smoke` profile.

`make_fixture_tree(root)` writes synthetic rows (seeded, so every call writes the same bytes) laid out exactly
like `$WORKBENCH_DATA`: the same file names, headers or none, delimiters, quoting, line endings, compression and
odd corners that the loaders must handle (the zipped Twitter training file with empty texts, Bicodemix rows
without a majority label, AfriSenti `orm` with an empty train stub and an `ID` column, BESSTIE texts with line
breaks and quotes, train texts that reappear in `valid.csv`). Labels are carried by label words, so a classifier
can learn something in seconds. The words are illustrative, not curated language data. MOSI lives in
`tests/fixtures_multimodal.py`.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

AFRISENTI_LEXICON = {
    "kin": {
        "positive": ["byiza", "urakoze", "ndishimye", "neza cyane", "murakoze"],
        "negative": ["nabi", "birababaje", "ikibazo", "agahinda", "ntibikwiye"],
        "neutral": ["uyu munsi", "amakuru", "inama", "ejo", "i Kigali"],
        "filler": ["ariko", "rwose", "abantu", "ubu", "kandi", "twese"],
    },
    "swa": {
        "positive": ["nzuri sana", "asante", "furaha", "safi", "hongera"],
        "negative": ["mbaya", "huzuni", "hasira", "tatizo", "aibu"],
        "neutral": ["leo", "habari", "mkutano", "kesho", "Dar es Salaam"],
        "filler": ["lakini", "kweli", "watu", "sasa", "na", "sisi"],
    },
    "tso": {
        "positive": ["swinene", "ndza khensa", "ku tsaka", "kahle", "hi khensile"],
        "negative": ["ku biha", "gome", "xiphiqo", "ku vaviseka", "swo biha"],
        "neutral": ["namuntlha", "mahungu", "nhlangano", "mundzuku", "eGiyani"],
        "filler": ["kambe", "hakunene", "vanhu", "sweswi", "naswona", "hina"],
    },
    "hau": {
        "positive": ["mai kyau", "na gode", "farin ciki", "madalla", "alhamdulillah"],
        "negative": ["mummuna", "bakin ciki", "matsala", "haushi", "abin kunya"],
        "neutral": ["yau", "labari", "taro", "gobe", "a Kano"],
        "filler": ["amma", "gaskiya", "mutane", "yanzu", "kuma", "mu"],
    },
    "yor": {
        "positive": ["dáadáa", "ẹ ṣé", "ayọ̀", "rere", "ó dára"],
        "negative": ["burú", "ìbànújẹ́", "wàhálà", "ìbínú", "ó ṣe ni láàánú"],
        "neutral": ["lónìí", "ìròyìn", "ìpàdé", "ọ̀la", "ní Èkó"],
        "filler": ["ṣùgbọ́n", "lóòótọ́", "àwọn ènìyàn", "báyìí", "àti", "àwa"],
    },
    "amh": {
        "positive": ["ጥሩ", "አመሰግናለሁ", "ደስታ", "ቆንጆ", "እንኳን ደስ አለዎት"],
        "negative": ["መጥፎ", "ሀዘን", "ችግር", "ቁጣ", "አሳፋሪ"],
        "neutral": ["ዛሬ", "ዜና", "ስብሰባ", "ነገ", "አዲስ አበባ"],
        "filler": ["ግን", "በእውነት", "ሰዎች", "አሁን", "እና", "እኛ"],
    },
    "orm": {
        "positive": ["gaarii", "galatoomaa", "gammachuu", "bareedaa", "baga gammaddan"],
        "negative": ["hamaa", "gadda", "rakkoo", "aarii", "qaanii"],
        "neutral": ["har'a", "oduu", "walgahii", "boru", "Finfinnee"],
        "filler": ["garuu", "dhugumaan", "namoota", "amma", "fi", "nuyi"],
    },
}
AFRISENTI_SPLIT_SIZES = {"train": 42, "dev": 39, "test": 40}
EMOJI = {"positive": ["😍", "🙏", "👏"], "negative": ["😡", "😢", "🙄"], "neutral": ["", "🤔", ""]}

REVIEW_WORDS = {
    "positive": ["delicious", "friendly", "amazing", "fresh", "lovely", "spotless", "generous", "superb"],
    "negative": ["cold", "rude", "overpriced", "bland", "dirty", "stale", "slow", "awful"],
}
VARIETY_WORDS = {
    "en-AU": ["arvo", "brekkie", "mate", "heaps", "servo", "Melbourne"],
    "en-IN": ["yaar", "paneer", "chai", "bhai", "Bengaluru", "biryani"],
    "en-UK": ["cheers", "queue", "quid", "brilliant", "Manchester", "chippy"],
}
PLACES = ["cafe", "restaurant", "pub", "bakery", "hotel", "pizza place", "burger joint", "noodle bar"]
DISHES = ["flat white", "eggs benedict", "fish and chips", "curry", "pad thai", "burger", "pasta", "dosa"]
TOPICS = ["the new metro line", "rent prices", "the cricket", "the election", "my landlord", "the footy", "traffic"]
SARCASTIC = [
    "Oh wonderful, {topic} again, exactly what I needed today",
    "Yeah right, because {topic} has always worked out so well /s",
    "Wow, {topic}, truly the highlight of my week. Totally thrilled.",
    "Sure, let's all cheer for {topic}, what could possibly go wrong",
]
HINGLISH = {
    "positive": ["bahut accha hai", "ekdum mast", "dil khush ho gaya"],
    "negative": ["bilkul bekar hai", "bahut bura laga", "time waste"],
}

TWITTER_ENTITIES = ["Borderlands", "Facebook", "Amazon", "Microsoft", "Nvidia", "FIFA", "Verizon", "Xbox(Xseries)"]
TWITTER_WORDS = {
    "Positive": ["love", "awesome", "great", "fun", "best", "amazing"],
    "Negative": ["hate", "broken", "worst", "terrible", "trash", "angry"],
    "Neutral": ["announced", "update", "today", "news", "reports", "available"],
    "Irrelevant": ["lol", "random", "whatever", "meme", "weekend", "coffee"],
}

MALAY_WORDS = {
    "positive": ["alhamdulillah selamat", "terima kasih", "syukur", "bagus", "good job"],
    "negative": ["teruk", "bahaya", "sedih", "marah", "susah"],
    "neutral": ["kat mana", "pukul berapa", "jalan", "info", "lokasi"],
    "sarc": ["pandai sangat la", "hebat sangat la tu", "bagus la tu kan"],
}

IMDB_WORDS = {
    "positive": ["masterpiece", "wonderful", "brilliant", "moving", "superb", "delightful"],
    "negative": ["boring", "awful", "waste", "dreadful", "lifeless", "clumsy"],
}


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _csv_text(
    rows: Sequence[Sequence[object]], *, delimiter: str = ",", line_end: str = "\r\n", quoting=csv.QUOTE_MINIMAL
) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end, quoting=quoting)
    writer.writerows(rows)
    return buffer.getvalue()


def _labels(rng: random.Random, counts: dict[str, int]) -> list[str]:
    """A shuffled list holding each label exactly `counts[label]` times (every label present)."""
    labels = [name for name, n in counts.items() for _ in range(n)]
    rng.shuffle(labels)
    return labels


# ---------------------------------------------------------------------------------------------- AfriSenti
def _tweet(rng: random.Random, lexicon: dict[str, list[str]], label: str) -> str:
    words = [rng.choice(lexicon["filler"]), rng.choice(lexicon[label]), rng.choice(lexicon["filler"])]
    if rng.random() < 0.5:
        words.append(rng.choice(lexicon[label]))
    text = " ".join(words)
    if rng.random() < 0.6:
        text = "@user " + text
    text += rng.choice(EMOJI[label])
    if rng.random() < 0.2:
        text += " URL"
    return text


def _write_afrisenti(root: Path) -> None:
    for language, lexicon in AFRISENTI_LEXICON.items():
        for split, size in AFRISENTI_SPLIT_SIZES.items():
            path = root / "afrisenti" / language / f"{split}.tsv"
            if language == "orm" and split == "train":  # zero-shot language: header-only stub, as released
                _write_bytes(path, b"tweet\tlabel\n")
                continue
            rng = random.Random(f"afrisenti-{language}-{split}")
            third = size // 3
            labels = _labels(rng, {"negative": third, "neutral": size - 2 * third, "positive": third})
            if language == "orm":  # Oromo dev/test carry an extra ID column, as released
                prefix = f"or_{split}_"
                rows = [["ID", "tweet", "label"]]
                rows += [[f"{prefix}{i + 1:05d}", _tweet(rng, lexicon, lab), lab] for i, lab in enumerate(labels)]
            else:
                rows = [["tweet", "label"]] + [[_tweet(rng, lexicon, lab), lab] for lab in labels]
            text = _csv_text(rows, delimiter="\t", line_end="\n", quoting=csv.QUOTE_NONE)
            _write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------- BESSTIE
def _review(rng: random.Random, variety: str, source: str, sentiment: int, sarcastic: int, cm: bool = False) -> str:
    polarity = "positive" if sentiment else "negative"
    slang = rng.choice(VARIETY_WORDS[variety])
    if sarcastic:
        text = rng.choice(SARCASTIC).format(topic=rng.choice(TOPICS)).rstrip(".")
        return f"{text}, {slang}."
    if cm:
        hinglish, adjective = rng.choice(HINGLISH[polarity]), rng.choice(REVIEW_WORDS[polarity])
        return f"{slang.capitalize()} {rng.choice(TOPICS)} {hinglish}, {adjective}"
    adjective, second = rng.sample(REVIEW_WORDS[polarity], 2)
    if source == "Google":
        text = f"The {rng.choice(DISHES)} at this {rng.choice(PLACES)} was {adjective}, and the staff were {second}."
        if rng.random() < 0.3:
            text += f' The owner said "{slang}!" when we left.'
        if rng.random() < 0.2:
            text += f"\n\nWould{'' if sentiment else ' not'} come back for {rng.choice(DISHES)}."
    else:
        text = f"Honestly {rng.choice(TOPICS)} is {adjective} {slang}, {second} as always"
        if rng.random() < 0.25:
            text += f"\nEdit: still {adjective}."
    return text


def _besstie_items(rng: random.Random, variety: str, source: str, size: int) -> list[tuple[str, int, int, bool]]:
    """(text, sentiment, sarcasm, is_code_mixed) with both labels of both tasks present; sarcasm mostly negative."""
    n_sarcastic = max(4, size // 5)
    sarcasm = [1] * n_sarcastic + [0] * (size - n_sarcastic)
    sentiment = [0] * (n_sarcastic - 1) + [1] + [int(i % 3 != 0) for i in range(size - n_sarcastic)]
    items, seen = [], set()
    for sent, sarc in zip(sentiment, sarcasm):
        cm = variety == "en-IN" and source == "Reddit" and not sarc and rng.random() < 0.3
        text = _review(rng, variety, source, sent, sarc, cm)
        while text in seen:
            text = _review(rng, variety, source, sent, sarc, cm) + f" #{len(seen)}"
        seen.add(text)
        items.append((text, sent, sarc, cm))
    rng.shuffle(items)
    return items


def _write_besstie(root: Path) -> None:
    base = root / "besstie"
    valid: dict[tuple[str, str], list] = {}
    for variety in ("en-AU", "en-IN", "en-UK"):
        for source in ("Google", "Reddit"):
            rng = random.Random(f"besstie-valid-{variety}-{source}")
            valid[variety, source] = _besstie_items(rng, variety, source, 48 if variety == "en-IN" else 40)
    rows = [["text", "label", "variety", "source", "task"]]
    for task, position in (("Sentiment", 1), ("Sarcasm", 2)):
        for (variety, source), items in valid.items():
            rows += [[item[0], item[position], variety, source, task] for item in items]
    _write_bytes(base / "valid.csv", _csv_text(rows, line_end="\n").encode("utf-8"))

    wide = [["example_id", "source", "variety", "text", "sentiment", "sarcasm", "subset", "original_split"]]
    for source in ("Google", "Reddit"):
        for variety in ("en-AU", "en-UK"):
            rng = random.Random(f"besstie-train-{variety}-{source}")
            items = _besstie_items(rng, variety, source, 40)
            items[:3] = valid[variety, source][:3]  # BESSTIE's train and valid share texts (same labels)
            for text, sent, sarc, _ in items:
                row_id = f"train_{len(wide) - 1:05d}"
                wide.append([row_id, source.lower(), variety, text, sent, sarc, variety.replace("-", "_"), "train"])
    _write_bytes(base / "original_train_en-AU_en-UK.csv", _csv_text(wide, line_end="\n").encode("utf-8"))

    rng = random.Random("besstie-train-en-IN-Reddit")
    train_items = _besstie_items(rng, "en-IN", "Reddit", 40)
    train_items[:2] = valid["en-IN", "Reddit"][:2]
    held_out = valid["en-IN", "Reddit"]
    halves = {"train": train_items, "valid": held_out[: len(held_out) // 2], "test": held_out[len(held_out) // 2 :]}
    for task, position in (("Sentiment", 1), ("Sarcasm", 2)):
        for split, items in halves.items():
            table = [["id", "text", "label", "is_cm"]]
            table += [[i, item[0], item[position], str(item[3])] for i, item in enumerate(items)]
            path = base / "splits_en-IN_Reddit_cm" / task / f"{split}_cm.csv"
            _write_bytes(path, _csv_text(table, line_end="\n").encode("utf-8"))


# ---------------------------------------------------------------------------------------------- Twitter
def _tweet_en(rng: random.Random, entity: str, label: str, long: bool) -> str:
    words = TWITTER_WORDS[label]
    text = f"{rng.choice(words)} {entity} {rng.choice(words)}"
    if long:
        filler = (
            f"so I spent the whole {rng.choice(['weekend', 'evening', 'night'])} with {entity} and I have to say "
            f"it was {rng.choice(words)} from start to finish, my friends agreed it was {rng.choice(words)} "
            f"and we kept talking about how {rng.choice(words)} the whole thing felt compared with last year, "
            f"honestly {rng.choice(words)} is the only word for it and I will tell everyone who asks me about it"
        )
        text = f"{text}, {filler}"
    return text + rng.choice(["", " ,", "!", " pic.twitter.com/x7Qz"])


def _paraphrase(rng: random.Random, text: str, label: str) -> str:
    words = text.split(" ")
    i = rng.randrange(len(words))
    words[i] = rng.choice(TWITTER_WORDS[label])
    return " ".join(words)


def _write_twitter(root: Path) -> None:
    base = root / "twitter_entity_sentiment"
    rng = random.Random("twitter-training")
    rows = []
    labels = ["Positive", "Negative", "Neutral", "Irrelevant"] * 5  # 20 tweet ids, 6 variants each (as released)
    for k, label in enumerate(labels):
        tweet_id, entity = 2401 + k, TWITTER_ENTITIES[k % len(TWITTER_ENTITIES)]
        base_text = _tweet_en(rng, entity, label, long=k < 10)  # ids 0..9: 40+ words, every label
        for variant in range(6):
            text = base_text if variant == 0 else _paraphrase(rng, base_text, label)
            if (k, variant) in {(3, 5), (8, 4), (13, 2)}:
                text = ""  # the released file has rows with empty text
            elif (k, variant) in {(5, 3), (16, 1)}:
                text = "  "  # ... and some whitespace-only text
            rows.append([tweet_id, entity, label, text])
    member = io.BytesIO()
    with zipfile.ZipFile(member, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("twitter_training.csv", date_time=(2021, 8, 9, 2, 52, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, _csv_text(rows).encode("utf-8"))
    _write_bytes(base / "twitter_training.csv.zip", member.getvalue())

    rng = random.Random("twitter-validation")
    rows = []
    for k, label in enumerate(["Irrelevant", "Neutral", "Negative", "Positive"] * 10):
        entity = TWITTER_ENTITIES[(k * 3) % len(TWITTER_ENTITIES)]
        rows.append([3364 + 17 * k, entity, label, _tweet_en(rng, entity, label, long=k % 7 == 0)])
    _write_bytes(base / "twitter_validation.csv", _csv_text(rows).encode("utf-8"))


# ---------------------------------------------------------------------------------------------- Bicodemix
BICODEMIX_COLUMNS = [
    "id",
    "post/keyword",
    "comment/tweet",
    "username",
    "like count",
    "replied to",
    "reply count",
    "2nd level comment/ reply",
    "time created",
    "majority_sent",
    "majority_sarc",
    "lang_id",
]
POSTS = [
    "Taiping Perak Banjir 28/08/2022 #fyp #viral #banjir Publish: 28-8-2022",
    "banjir simpang 4 benoni #banjir2022 Publish: 10/09/22",
    "polis tahan suspek rompakan #PDRM",
    "jalan ditutup kerana tanah runtuh",
]


def _write_bicodemix(root: Path) -> None:
    rng = random.Random("bicodemix")
    sentiments = _labels(rng, {"negative": 80, "positive": 60, "neutral": 54, "": 6})  # '' = no majority label
    rows = [BICODEMIX_COLUMNS]
    for k, sentiment in enumerate(sentiments):
        sarcastic = sentiment in ("negative", "positive") and k % 3 == 0
        lang = ["my", "my", "cm", "en"][k % 4]
        polarity = sentiment or rng.choice(["positive", "negative"])
        words = [rng.choice(MALAY_WORDS[polarity]), rng.choice(["la", "kot", "je", "ni"])]
        if sarcastic:
            words.insert(0, rng.choice(MALAY_WORDS["sarc"]))
        if lang == "en":
            words.append(rng.choice(["the flood", "the police", "this road", "everyone"]))
        elif lang == "cm":
            words.append(rng.choice(["so bad", "thank you", "no comment", "stay safe"]))
        text = " ".join(words) + rng.choice(["", "..", " ??", ", betul tak"])
        username = f"{rng.getrandbits(32):08x}-{rng.getrandbits(12):03x}"
        is_reply = rng.random() < 0.4
        rows.append(
            [
                28987 + k,
                POSTS[k % len(POSTS)],
                text,
                username,
                rng.randrange(0, 40),
                f"{rng.getrandbits(32):08x}-{rng.getrandbits(12):03x}" if is_reply else "---",
                "---" if is_reply else rng.randrange(0, 5),
                rng.choice(["Yes" if is_reply else "No", "", "1.5657e+18"]),
                rng.choice(["29/8/2022", "2d ago ", "10/9/2022", "3w ago "]),
                sentiment,
                "sarc" if sarcastic else "notsarc",
                lang,
            ]
        )
    _write_bytes(root / "bicodemix" / "annotated_bicodemix_publicsa_v2.csv", _csv_text(rows).encode("utf-8"))


# ---------------------------------------------------------------------------------------------- IMDB
def _imdb_review(rng: random.Random, label: str) -> str:
    words = IMDB_WORDS[label]
    sentences = [
        f"I watched this film last {rng.choice(['night', 'week', 'Sunday'])} and found it {rng.choice(words)}.",
        f'The lead actor was {rng.choice(words)}, and the script felt "{rng.choice(words)}" throughout.',
        f"Overall a {rng.choice(words)} experience{rng.choice(['.', '!', '...'])}",
    ]
    rng.shuffle(sentences)
    return sentences[0] + " " + sentences[1] + "<br /><br />" + sentences[2]


def imdb_fixture_rows() -> list[list[str]]:
    """The IMDB fixture rows (`review, sentiment, split, file_id, rating`), sorted like the released CSV."""
    rows = []
    for split in ("train", "test"):
        for label in ("positive", "negative"):
            rng = random.Random(f"imdb-{split}-{label}")
            for file_id in range(30):
                rating = rng.choice([7, 8, 9, 10]) if label == "positive" else rng.choice([1, 2, 3, 4])
                rows.append([_imdb_review(rng, label), label, split, str(file_id), str(rating)])
    return rows


def _write_imdb(root: Path) -> None:
    text = _csv_text([["review", "sentiment", "split", "file_id", "rating"]] + imdb_fixture_rows())
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="imdb_50k_aclImdb.csv", mode="wb", fileobj=buffer, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    _write_bytes(root / "imdb" / "imdb_50k_aclImdb.csv.gz", buffer.getvalue())


def make_fixture_tree(root: Path) -> Path:
    """Write the fixture data tree under `root` (created if needed) and return `root`.

    Same layout as the real data: `afrisenti/<lang>/{train,dev,test}.tsv` for kin, swa, tso, hau, yor, amh and
    orm (empty train stub); `besstie/valid.csv`, the wide en-AU/en-UK train file and
    `splits_en-IN_Reddit_cm/<Task>/{train,valid,test}_cm.csv`; the Twitter training zip and validation CSV;
    Bicodemix (12 columns, 6 rows without a majority sentiment); IMDB (60 train / 60 test reviews).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_afrisenti(root)
    _write_besstie(root)
    _write_twitter(root)
    _write_bicodemix(root)
    _write_imdb(root)
    (root / "README.md").write_text("Synthetic fixture data in the real file formats, written by tests/fixtures.py.\n")
    return root


# ---------------------------------------------------------------------------------------------- bad input helpers
def git_lfs_pointer(data: bytes) -> bytes:
    """What Git LFS leaves in a checkout instead of `data` when the object was never fetched."""
    import hashlib

    return (
        b"version https://git-lfs.github.com/spec/v1\n"
        + f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n".encode()
    )


def file_payload(path: Path) -> bytes:
    """The bytes a loader parses: the file itself, the gzip's content or the single member of a zip."""
    data = Path(path).read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(zf.namelist()[0])
    return data


def write_payload(path: Path, payload: bytes) -> Path:
    """Write `payload` into `path` in the container its name says (plain, gzip, or a zip holding one member named
    like the file without `.zip`), creating folders as needed."""
    path = Path(path)
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    elif path.suffix == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.stem, payload)
        payload = buffer.getvalue()
    _write_bytes(path, payload)
    return path
