"""Tweet cleaning for sentence embeddings: URLs, user mentions, emojis, punctuation and case, each a switch.

The steps run in a fixed order (URLs and mentions first, so that `@user` and `http://…` go before punctuation
would break them apart; lowercasing last) and whitespace is collapsed at the end. Punctuation and emojis are
replaced by a space, not deleted, so that `great!!!good` becomes two words and `n'abandi` stays readable.
Letters of every script (Ge'ez, Arabic, Latin with diacritics) are kept: only Unicode punctuation (category P*)
and emoji / pictographic symbols are touched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# Links as released in AfriSenti are the literal token `URL`; raw links are matched too, for other data.
URL_PATTERN = re.compile(r"(?:https?://|www\.)\S+|\bURL\b", flags=re.IGNORECASE)
# AfriSenti replaced user names by `@user`; any @handle is matched.
MENTION_PATTERN = re.compile(r"@\w+")
# Emoji and pictographs, dingbats, flags, skin tones, variation selectors, the zero-width joiner and keycaps.
EMOJI_PATTERN = re.compile(
    "["
    "\U0001f000-\U0001faff"  # mahjong .. symbols and pictographs extended-A (emoticons, transport, flags ...)
    "\U00002600-\U000027bf"  # miscellaneous symbols, dingbats
    "\U00002190-\U000021ff"  # arrows
    "\U00002b00-\U00002bff"  # misc symbols and arrows (stars, squares)
    "\U0000fe0e\U0000fe0f"  # variation selectors (text / emoji presentation)
    "\U0000200d"  # zero-width joiner
    "\U000020e3"  # combining enclosing keycap
    "\U0000231a-\U0000231b\U00002328\U000023cf-\U000023fa"  # watch, hourglass, keyboard, media buttons
    "\U000024c2\U00003030\U0000303d\U00003297\U00003299"
    "]+"
)
WHITESPACE = re.compile(r"\s+")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


@dataclass(frozen=True)
class CleaningConfig:
    """Which cleaning steps run; every step on by default (the MAGE paper's preprocessing)."""

    lowercase: bool = True
    punctuation: bool = True
    urls: bool = True
    mentions: bool = True
    emojis: bool = True

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


def clean_tweet(text: str, config: CleaningConfig | None = None) -> str:
    """One tweet cleaned by the enabled steps, whitespace collapsed (may be empty, e.g. an emoji-only tweet)."""
    config = config or CleaningConfig()
    if config.urls:
        text = URL_PATTERN.sub(" ", text)
    if config.mentions:
        text = MENTION_PATTERN.sub(" ", text)
    if config.emojis:
        text = EMOJI_PATTERN.sub(" ", text)
    if config.punctuation:
        text = "".join(" " if _is_punctuation(c) else c for c in text)
    if config.lowercase:
        text = text.lower()
    return WHITESPACE.sub(" ", text).strip()


def clean_tweets(texts: Iterable[str], config: CleaningConfig | dict[str, bool] | None = None) -> list[str]:
    """`clean_tweet` over many texts; `config` may be a plain dict of switches (as notebook parameters are)."""
    if isinstance(config, dict):
        config = CleaningConfig(**config)
    return [clean_tweet(t, config) for t in texts]
