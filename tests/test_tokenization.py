"""The proof behind the tokenisation lesson: exact round trips, deterministic training, Hugging Face's BPE."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.transformers.tokenization import (
    N_BYTES,
    check_decode_stream,
    course_corpus,
    decode,
    decode_stream,
    encode,
    merge,
    pair_counts,
    plot_vocab_tradeoff,
    token_bytes,
    token_counts,
    train_bpe,
)

# A small corpus with one, two, three and four byte characters, so merges cross character boundaries.
CORPUS = ("the cat sat on the mat; Grüße aus der Küche! 🧪🧪 naïve café, 🧟‍♂️ and 日本語の文章 " * 6
          + "e\u0301 combining, tabs\tand\nnewlines ")
MERGES = train_bpe(CORPUS, vocab_size=N_BYTES + 60)

EDGE_TEXTS = ["", " ", "a", "é", "🧪", "🧟‍♂️", "e\u0301", "\x00\x7f\x80", "日本語", "\U0010ffff",
              "the cat sat", "aaaaaaa", CORPUS]


def test_bytes_are_the_utf8_encoding():
    for text in EDGE_TEXTS:
        assert encode(text, []) == list(text.encode("utf-8"))
        assert decode(encode(text, []), []) == text
    assert len(token_bytes([])) == 256


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_round_trip_edge_cases(text):
    ids = encode(text, MERGES)
    assert decode(ids, MERGES) == text
    assert all(0 <= i < N_BYTES + len(MERGES) for i in ids)
    assert len(ids) <= len(text.encode("utf-8"))


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=40))
def test_round_trip_any_unicode(text):
    assert decode(encode(text, MERGES), MERGES) == text
    assert decode(encode(text, []), []) == text


@settings(max_examples=20, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab é🧪\n"), max_size=60))
def test_round_trip_with_merges_trained_on_the_text_itself(text):
    merges = train_bpe(text, vocab_size=N_BYTES + 10)
    ids = encode(text, merges)
    assert decode(ids, merges) == text
    # Encoding the training text repeats training's own merging, so the lengths agree.
    assert len(ids) == token_counts(text, [N_BYTES + 10])[N_BYTES + 10]


def test_the_classic_example_and_its_tie_break():
    merges = train_bpe("aaabdaaabac", vocab_size=300)
    # After (97, 97), the pairs (256, 97) and (97, 98) both occur twice; the first to occur wins.
    assert merges == [(97, 97), (256, 97), (257, 98)]
    assert token_bytes(merges)[258] == b"aaab"
    # Three pairs tie at the start; the first in the text wins.
    assert train_bpe("abcd abcd", vocab_size=257) == [(97, 98)]
    assert train_bpe("cdab abcd", vocab_size=257) == [(99, 100)]


def test_training_is_deterministic_and_prefix_consistent():
    assert train_bpe(CORPUS, N_BYTES + 60) == MERGES
    # Asking for a smaller vocabulary gives the first merges of a larger one.
    assert train_bpe(CORPUS, N_BYTES + 25) == MERGES[:25]


def test_training_stops_when_no_pair_repeats():
    assert train_bpe("abc", vocab_size=1000) == []
    assert train_bpe("", vocab_size=1000) == []
    assert train_bpe("anything", vocab_size=N_BYTES) == []
    assert len(train_bpe("abab", vocab_size=1000)) == 1


def test_merge_is_left_to_right_without_overlap():
    assert merge([97, 97, 97], (97, 97), 256) == [256, 97]
    assert merge([97, 97, 97, 97], (97, 97), 256) == [256, 256]
    assert merge([], (1, 2), 256) == []
    assert pair_counts([7]) == {}


def test_merges_in_the_wrong_order_give_other_ids():
    merges = train_bpe("aaabdaaabac", vocab_size=300)
    ids = encode("aaab", [])
    for pair in reversed(merges):
        ids = merge(ids, pair, N_BYTES + merges.index(pair))
    assert ids != encode("aaab", merges)
    assert len(ids) > len(encode("aaab", merges))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte, the alphabet of Hugging Face's byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


@pytest.mark.parametrize("n_merges", [0, 1, 20, 60])
def test_encode_equals_hugging_face_bpe_with_the_same_merges(n_merges):
    tokenizers = pytest.importorskip("tokenizers")
    merges = MERGES[:n_merges]
    to_char = _bytes_to_unicode()
    pieces = {i: "".join(to_char[b] for b in piece) for i, piece in token_bytes(merges).items()}
    model = tokenizers.models.BPE(
        vocab={piece: i for i, piece in pieces.items()},
        merges=[(pieces[a], pieces[b]) for a, b in merges],
    )
    # No normaliser and no pre-tokeniser: the whole text is one "word", as in our encode.
    hf = tokenizers.Tokenizer(model)
    for text in EDGE_TEXTS[1:] + ["Küche 🧪 the mat", "sat sat sat on on"]:
        mapped = "".join(to_char[b] for b in text.encode("utf-8"))
        assert hf.encode(mapped).ids == encode(text, merges), text


def test_decode_errors_and_replacement():
    with pytest.raises(UnicodeDecodeError, match="unexpected end of data"):
        decode([195], [])
    with pytest.raises(UnicodeDecodeError, match="invalid start byte"):
        decode([255], [])
    assert decode([195], [], errors="replace") == "\ufffd"
    assert decode(iter([104, 105]), []) == "hi"


def test_token_counts_fall_and_match_encode():
    text = course_corpus(max_chars=2000)
    sizes = [256, 260, 270, 290]
    counts = token_counts(text, sizes)
    assert list(counts) == sizes
    assert counts[256] == len(text.encode("utf-8"))
    assert all(counts[a] > counts[b] for a, b in zip(sizes, sizes[1:], strict=False))
    merges = train_bpe(text, max(sizes))
    for size in sizes:
        assert counts[size] == len(encode(text, merges[: size - N_BYTES]))
    # Past the point where training stops, the count stays put.
    assert token_counts("abab", [256, 257, 400]) == {256: 4, 257: 2, 400: 2}


def test_course_corpus():
    text = course_corpus(max_chars=5000)
    assert len(text) == 5000
    assert text.startswith("# ")
    assert course_corpus(max_chars=0) == ""
    with pytest.raises(ValueError, match="max_chars.*-1"):
        course_corpus(max_chars=-1)


def test_plot_vocab_tradeoff():
    fig = plot_vocab_tradeoff()
    assert isinstance(fig, Figure)
    (line,) = fig.axes[0].get_lines()
    y = list(line.get_ydata())
    assert y[0] == pytest.approx(len(course_corpus(8000).encode("utf-8")) / 8000)
    assert all(a > b for a, b in zip(y, y[1:], strict=False))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: encode(b"abc", []), TypeError, "text must be a str, got bytes"),
        (lambda: encode("a\ud800", []), ValueError, "lone surrogate at index 1"),
        (lambda: train_bpe("abc", 255), ValueError, "vocab_size .* got 255"),
        (lambda: train_bpe("abc", 300.0), ValueError, r"vocab_size .* got 300\.0"),
        (lambda: train_bpe("abc", True), ValueError, "vocab_size .* got True"),
        (lambda: encode("abc", [(97, 256)]), ValueError, r"merges\[0\] .* below 256, got \(97, 256\)"),
        (lambda: encode("abc", [(97, 98), (258, 1)]), ValueError, r"merges\[1\] .* below 257"),
        (lambda: encode("abc", "ab"), TypeError, "merges must be a list"),
        (lambda: decode([1, 256], []), ValueError, r"ids\[1\] .* \[0, 256\), got 256"),
        (lambda: decode([-1], []), ValueError, r"ids\[0\] .* got -1"),
        (lambda: decode([1.0], []), ValueError, r"ids\[0\] .* got 1\.0"),
    ],
)
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_decode_stream_solution_passes_its_checker():
    check_decode_stream(decode_stream)
    ids = encode(CORPUS, MERGES)
    assert "".join(decode_stream(ids, MERGES)) == CORPUS


def test_check_decode_stream_rejects_wrong_attempts():
    vocab = token_bytes

    def per_token_replace(ids, merges):
        # Hammer's streaming: every token decoded on its own, broken characters shown as U+FFFD.
        return [vocab(merges)[i].decode("utf-8", errors="replace") for i in ids]

    def whole_text_once(ids, merges):
        return [decode(ids, merges)]

    def late_characters(ids, merges):
        # Right text, right length, but everything arrives at the end.
        return [""] * (len(ids) - 1) + [decode(ids, merges)] if ids else []

    def never_raises(ids, merges):
        try:
            return decode_stream(ids, merges)
        except ValueError:
            return [""] * len(ids)

    for wrong, hint in [(per_token_replace, "join"), (whole_text_once, "one piece per id"),
                        (late_characters, "expected \\['', 'é', '!'\\]"), (never_raises, "raise ValueError")]:
        with pytest.raises(AssertionError, match=hint):
            check_decode_stream(wrong)
