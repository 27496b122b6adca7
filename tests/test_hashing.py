"""String hashes: stable across processes, equal for every input form, few collisions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa

from logpipe.hashing import hash_strings


def test_hash_strings_is_stable_across_processes() -> None:
    words = ["", "a", "alice", "bob@example.com", "x" * 100, "日本語"]
    here = hash_strings(words).tolist()
    code = f"from logpipe.hashing import hash_strings; print(hash_strings({words!r}).tolist())"
    # A different PYTHONHASHSEED proves we do not use Python's salted hash.
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert out.stdout.strip() == str(here)


def test_hash_strings_inputs_agree_and_nulls_hash_as_empty() -> None:
    words = ["u1", "u2", "u1", "", "a-much-longer-user-name-than-eight-bytes"]
    expected = hash_strings(words)
    assert expected.dtype == np.uint64
    assert np.array_equal(hash_strings(np.array(words, dtype=object)), expected)
    assert np.array_equal(hash_strings(np.array(words)), expected)  # numpy unicode
    assert np.array_equal(hash_strings(pa.array(words)), expected)
    assert np.array_equal(hash_strings(pa.array(words).dictionary_encode()), expected)
    chunked = pa.chunked_array([pa.array(words[:2]), pa.array(words[2:])])
    assert np.array_equal(hash_strings(chunked), expected)
    assert np.array_equal(hash_strings(pa.array(words, pa.large_string())), expected)
    assert expected[0] == expected[2] and expected[0] != expected[1]
    nulls = hash_strings(pa.array([None, "", None], pa.string()))
    assert len(set(nulls.tolist())) == 1 and nulls[0] == expected[3]
    assert len(hash_strings([])) == 0


def test_hash_strings_separates_near_duplicates() -> None:
    words = [f"user{i}" for i in range(20_000)] + ["a", "a\x00", "ab", "b", "abcdefgh", "abcdefgi"]
    assert len(set(hash_strings(words).tolist())) == len(words)
