"""The text every probe encodes, and the models it asks for: standard library only, no tiktoken import
(probe_threads.py must leave tiktoken's first import to its threads)."""

MIXED_TEXT = (
    "Hello, world! The quick brown fox jumps over the lazy dog.\n"
    "中文分词测试：你好，世界。 한국어 문장도 넣어 봅니다. 🙂🚀👩‍💻\n"
    "def add(a, b):\n\treturn a + b  # code\n"
    "    \n\n\n   trailing spaces   \t\t"
    "<|endoftext|><|fim_prefix|>x<|fim_suffix|>"
)
MODELS = ["gpt-4o", "gpt-4", "gpt-3.5-turbo", "text-davinci-003"]
