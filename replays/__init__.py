"""The histories: timeline files shipped as package data, and the loader that reads them."""

from replays._loader import (
    MAX_TOML_BYTES,
    Timeline,
    bundled,
    bundled_paths,
    decode_json_record,
    dump_jsonl,
    iter_jsonl,
    load_jsonl,
    load_timeline,
    load_toml,
    resolve,
)

__all__ = [
    "MAX_TOML_BYTES",
    "Timeline",
    "bundled",
    "bundled_paths",
    "decode_json_record",
    "dump_jsonl",
    "iter_jsonl",
    "load_jsonl",
    "load_timeline",
    "load_toml",
    "resolve",
]
