"""Run in a venv under test: encode a mixed text with every encoding; print JSON.

Used for the reference ids too (plain tiktoken reading a cache folder of the real files), so
the package is judged against what tiktoken gives with the published files.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import tiktoken

MIXED_TEXT = (
    "Hello, world! The quick brown fox jumps over the lazy dog.\n"
    "中文分词测试：你好，世界。 한국어 문장도 넣어 봅니다. 🙂🚀👩‍💻\n"
    "def add(a, b):\n\treturn a + b  # code\n"
    "    \n\n\n   trailing spaces   \t\t"
    "<|endoftext|><|fim_prefix|>x<|fim_suffix|>"
)
MODELS = ["gpt-4o", "gpt-4", "gpt-3.5-turbo", "text-davinci-003"]


def main() -> None:
    result = {"encodings": {}, "models": {}, "tiktoken": version("tiktoken")}
    for name in tiktoken.list_encoding_names():
        encoding = tiktoken.get_encoding(name)
        ids = encoding.encode(MIXED_TEXT, allowed_special="all")
        assert encoding.decode(ids) == MIXED_TEXT, name
        result["encodings"][name] = ids
    for model in MODELS:
        encoding = tiktoken.encoding_for_model(model)
        result["models"][model] = [encoding.name, encoding.encode("hello world")]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
