r"""
# Tokenisation: Chopping Language into Monster Food

!!! torchenstein "The Professor speaks"
    My monster attends, it multiplies heads, it spins its queries like a dervish, and yet it has never
    eaten a single word! A network swallows integers, not prose. Tonight we build the mincer: first the
    crude one that cuts text into its 256 possible bytes, then byte-pair encoding, which learns from a
    corpus which chunks deserve a name of their own. We train it on this very course, and we measure
    what a bigger vocabulary buys.

**You will learn to**

- turn any string into UTF-8 bytes and back, with 256 token ids and no unknown characters;
- train byte-pair encoding (BPE) from scratch: count adjacent pairs, merge the most frequent, repeat;
- encode by applying the merges in the order they were learned, and decode exactly, for any string;
- state a deterministic tie-breaking rule, so that the same text always trains the same tokenizer;
- measure how the vocabulary size trades off against the sequence length;
- dodge Hammer's traps: a character cut in half, merges in the wrong order, a tokenizer fit on the test set.

## Tokens, vocabulary, ids

A **token** is one piece of text the model sees as a unit: a character, a byte, a word, or a chunk in
between. The **vocabulary** is the fixed set of all tokens a tokenizer can produce, and each token's
**token id** is its integer index in that set, the number that the
[embedding lesson](../../nn/embeddings/index.md) looks up in its table. A tokenizer is the pair of
functions between strings and lists of ids: `encode` and `decode`.

Characters look like the obvious tokens, but Unicode has about 150,000 of them, and a vocabulary that
holds them all still meets new ones. Bytes are the escape. UTF-8 writes every character as one to four
bytes, so 256 ids cover every string ever written: ASCII letters take one byte, `é` two, `🧪` four.

```pycon
>>> from torchenstein.transformers.tokenization import decode, encode
>>> for text in ("a", "é", "🧪"):
...     print(f"{text!r}: {encode(text, [])}")
'a': [97]
'é': [195, 169]
'🧪': [240, 159, 167, 170]
>>> decode(encode("Grüße, 🧪!", []), [])
'Grüße, 🧪!'

```

The price is length: a byte tokenizer turns a page into thousands of ids, and attention pays for every
pair of them (the [attention lesson](../attention/index.md) showed the $T \times T$ score matrix).

## Byte-pair encoding

Byte-pair encoding (Gage, 1994; Sennrich et al., 2016; GPT-2's byte-level version, Radford et al., 2019)
buys shorter sequences with a bigger vocabulary, learned from a corpus. Start from the byte ids, then
repeat until the vocabulary is as large as you asked:

1. count every adjacent pair of ids in the corpus ([`pair_counts`][torchenstein.transformers.tokenization.pair_counts]);
2. take the most frequent pair and give it the next free id, 256, 257, ... (a **merge**);
3. replace every occurrence of the pair, left to right, by the new id
   ([`merge`][torchenstein.transformers.tokenization.merge]).

The list of merges *is* the tokenizer. **Ties** are broken by the pair that occurs first in the current
sequence, so training is deterministic; and training stops early when no pair occurs twice, since a
merge seen once only memorises the corpus. The classic example, `aaabdaaabac`, needs three merges:

```pycon
>>> from torchenstein.transformers.tokenization import pair_counts, token_bytes, train_bpe
>>> pair_counts(encode("aaab", []))
{(97, 97): 2, (97, 98): 1}
>>> merges = train_bpe("aaabdaaabac", vocab_size=300)
>>> merges
[(97, 97), (256, 97), (257, 98)]
>>> {i: piece for i, piece in token_bytes(merges).items() if i >= 256}
{256: b'aa', 257: b'aaa', 258: b'aaab'}
>>> encode("aaabdaaabac", merges)
[258, 100, 258, 97, 99]

```

After the first merge, `(256, 97)` and `(97, 98)` both occur twice; `(256, 97)` comes first, so it wins.

[`encode`][torchenstein.transformers.tokenization.encode] turns the text into bytes and applies every
merge in the order it was learned. [`decode`][torchenstein.transformers.tokenization.decode] looks
each id up as its bytes, joins them, and decodes the whole byte string as UTF-8. Since every merge
only glues two byte strings together, decoding the ids of any text gives the text back, exactly, for
any vocabulary (the tests prove it on random Unicode with emoji):

```pycon
>>> text = "Ünïcödé 🧪🧟 and the empty string:"
>>> decode(encode(text, merges), merges) == text and decode(encode("", merges), merges) == ""
True

```

## Training on the course itself

A tokenizer needs a corpus, and this course carries one that needs no download: the text of every
lesson, which is every lesson module's docstring.
[`course_corpus`][torchenstein.transformers.tokenization.course_corpus] joins them, and `max_chars` cuts
it short, since training from scratch in pure Python is slow (real tokenizers are written in Rust).

```pycon
>>> from torchenstein.transformers.tokenization import course_corpus
>>> corpus = course_corpus(max_chars=3000)
>>> merges = train_bpe(corpus, vocab_size=256 + 20)
>>> ids = encode(corpus, merges)
>>> {"merges": len(merges), "fewer tokens than bytes": len(ids) < len(corpus.encode()),
...  "round trip": decode(ids, merges) == corpus}
{'merges': 20, 'fewer tokens than bytes': True, 'round trip': True}

```

The first merges are the commonest pairs of the course's English and Markdown, such as a letter and the
space after it; print `[token_bytes(merges)[256 + i] for i in range(20)]` to read them yourself.

## Vocabulary size against sequence length

Every merge adds one row to the embedding table and one output to the final layer, and removes some
tokens from every sequence. [`token_counts`][torchenstein.transformers.tokenization.token_counts] trains
once and reports the length of the corpus after each vocabulary size:

```pycon
>>> from torchenstein.transformers.tokenization import token_counts
>>> counts = token_counts(corpus, [256, 266, 276])
>>> {"256 equals the bytes": counts[256] == len(corpus.encode()),
...  "falls as the vocab grows": counts[256] > counts[266] > counts[276]}
{'256 equals the bytes': True, 'falls as the vocab grows': True}

```

![Tokens per character of the course's text falling as the BPE vocabulary grows from 256 to 456, steeply at first and then more slowly](plot_vocab_tradeoff.svg)

The curve bends: the first merges take the commonest pairs and save the most, and each later one saves
less. Real models stop where a bigger table costs more than the shorter sequences save: GPT-2 at
50,257 ids, Llama 3 at 128,256. [`plot_vocab_tradeoff`][torchenstein.transformers.tokenization.plot_vocab_tradeoff]
draws it.

Bad input is refused by name:

```pycon
>>> train_bpe("abc", vocab_size=100)
Traceback (most recent call last):
    ...
ValueError: vocab_size must be an int of at least 256 (the byte ids), got 100

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: decoding token by token"
    Hammer streams his model's output to the screen, one id at a time, decoding each on its own. The
    first emoji blows up his demo: a token can hold *part* of a character, and half a character is not
    valid UTF-8. Decode the whole sequence; to show pieces as they arrive, decode with
    `errors="replace"`, for display only, since the replacement character `�` destroys the bytes.

    ```pycon
    >>> ids = encode("é🧪", [])
    >>> ids
    [195, 169, 240, 159, 167, 170]
    >>> bytes([ids[0]]).decode()
    Traceback (most recent call last):
        ...
    UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in position 0: unexpected end of data
    >>> [bytes([i]).decode(errors="replace") for i in ids[:2]]
    ['�', '�']
    >>> decode(ids, [])
    'é🧪'

    ```

    The challenge below builds the proper streaming decoder.

!!! hammer "Dr. Hammer's trap: merges in the wrong order"
    Hammer stores his merges in a set, and encodes by walking it in whatever order it comes out. But a
    merge can use an id that an earlier merge made: `(257, 98)` means nothing until 257 exists. Applied
    out of order, merges miss, the sequence comes out longer, and the ids are not the ones the model was
    trained on. Apply them in the order they were learned:

    ```pycon
    >>> from torchenstein.transformers.tokenization import merge
    >>> merges = train_bpe("aaabdaaabac", vocab_size=300)
    >>> ids = encode("aaab", [])
    >>> for pair in reversed(merges):                     # Hammer's order
    ...     ids = merge(ids, pair, 256 + merges.index(pair))
    >>> {"Hammer": ids, "learned order": encode("aaab", merges)}
    {'Hammer': [256, 97, 98], 'learned order': [258]}

    ```

!!! hammer "Dr. Hammer's trap: training the tokenizer on the test set"
    The tokenizer is fit to data like any model, so the [leak lesson](../../training/leak/index.md)'s
    rule holds: fit it on the training split only. Hammer trains his on everything, then reports how few
    tokens his test text needs (and a loss per token computed on them). His merges have already seen the
    test text, so they compress it better than they will compress any text they have not seen:

    ```pycon
    >>> train_text = "the cat sat on the mat. the cat ate the rat. " * 4
    >>> test_text = "a bat sat on a hat; a rat ate a bat. " * 4
    >>> honest = train_bpe(train_text, vocab_size=256 + 12)
    >>> leaky = train_bpe(train_text + test_text, vocab_size=256 + 12)
    >>> {"test tokens, honest": len(encode(test_text, honest)),
    ...  "test tokens, leaky": len(encode(test_text, leaky))}
    {'test tokens, honest': 96, 'test tokens, leaky': 76}

    ```

## Challenges

**1. A streaming decoder.** Write `decode_stream(ids, merges)` returning one string per id: the text
that becomes complete when that id arrives, so that printing the pieces one by one shows the text as it
is generated, never a broken character, and `"".join(pieces) == decode(ids, merges)`. A piece is empty
while a character waits for its remaining bytes. Raise `ValueError` for an id outside the vocabulary,
and for bytes that can never become valid UTF-8. (Hint: `codecs.getincrementaldecoder("utf-8")`.)

Check an attempt with `check_decode_stream(my_function)`, or put it in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answer passes:

```pycon
>>> from torchenstein.transformers.tokenization import check_decode_stream, decode_stream
>>> decode_stream(encode("é🧪!", []), [])
['', 'é', '', '', '', '🧪', '!']
>>> check_decode_stream(decode_stream)

```
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from matplotlib.figure import Figure

from torchenstein import lab

# The byte ids 0..255 come first; merge number i gets the id 256 + i.
N_BYTES = 256

Pair = tuple[int, int]


def pair_counts(ids: Sequence[int]) -> dict[Pair, int]:
    """Count every adjacent pair of ids, in the order each pair first occurs.

    Args:
        ids: a sequence of token ids.

    Returns:
        A dict from ``(left, right)`` to its number of occurrences, in order of first occurrence.

    Examples:
        >>> pair_counts([1, 2, 1, 2, 2])
        {(1, 2): 2, (2, 1): 1, (2, 2): 1}
    """
    # A Counter keeps insertion order, so the first occurrence decides the order of the keys: this is
    # what makes the tie-breaking of `train_bpe` deterministic.
    return dict(Counter(zip(ids, ids[1:], strict=False)))


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, scanning left to right, by ``new_id``.

    Args:
        ids: a sequence of token ids.
        pair: the two adjacent ids to glue together.
        new_id: the id that replaces them.

    Returns:
        The new, shorter or equal, list of ids.

    Examples:
        >>> merge([97, 97, 97, 98], (97, 97), 256)
        [256, 97, 98]
    """
    left, right = pair
    out: list[int] = []
    i = 0
    while i < len(ids):
        # Left to right, without overlaps: in "aaa" the first two a's merge and the third stays alone.
        if i + 1 < len(ids) and ids[i] == left and ids[i + 1] == right:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _bpe_steps(text: str, vocab_size: int) -> Iterator[tuple[Pair, list[int]]]:
    """Train BPE on ``text``, yielding each merge and the corpus's ids after it."""
    ids = list(text.encode("utf-8"))
    for new_id in range(N_BYTES, vocab_size):
        counts = pair_counts(ids)
        if not counts:
            return
        # `max` returns the first of equal maxima, which is the pair that occurs first: the tie-break.
        best = max(counts, key=counts.__getitem__)
        # A pair seen only once would merely memorise the corpus; stop instead.
        if counts[best] < 2:
            return
        ids = merge(ids, best, new_id)
        yield best, ids


def train_bpe(text: str, vocab_size: int) -> list[Pair]:
    """Learn byte-pair merges from ``text`` until the vocabulary holds ``vocab_size`` ids.

    The most frequent adjacent pair is merged at each step; ties go to the pair that occurs first in the
    current sequence. Training stops early when no pair occurs at least twice.

    Args:
        text: the training corpus.
        vocab_size: the size of the vocabulary, the 256 byte ids included.

    Returns:
        The merges in the order learned; merge ``i`` makes the id ``256 + i``.

    Raises:
        TypeError: if ``text`` is not a string.
        ValueError: if ``text`` cannot be written as UTF-8 or ``vocab_size`` is below 256.

    Examples:
        >>> train_bpe("abab abab", vocab_size=258)
        [(97, 98), (256, 256)]
    """
    _check_text(text)
    _check_vocab_size(vocab_size)
    return [pair for pair, _ in _bpe_steps(text, vocab_size)]


def encode(text: str, merges: Sequence[Pair]) -> list[int]:
    """Encode ``text`` as UTF-8 bytes, then apply every merge in the order it was learned.

    Args:
        text: any string that UTF-8 can write (every string without lone surrogates).
        merges: the merges from `train_bpe`; ``[]`` gives the plain byte ids.

    Returns:
        The token ids.

    Raises:
        TypeError: if ``text`` is not a string.
        ValueError: if ``text`` has a lone surrogate, or ``merges`` is malformed.

    Examples:
        >>> encode("hi!", [(104, 105)])
        [256, 33]
    """
    _check_text(text)
    _check_merges(merges)
    ids = list(text.encode("utf-8"))
    for i, pair in enumerate(merges):
        ids = merge(ids, pair, N_BYTES + i)
    return ids


def token_bytes(merges: Sequence[Pair]) -> dict[int, bytes]:
    """The bytes every id of the vocabulary stands for.

    Examples:
        >>> token_bytes([(104, 105), (256, 33)])[257]
        b'hi!'
    """
    _check_merges(merges)
    vocab = {i: bytes([i]) for i in range(N_BYTES)}
    for i, (left, right) in enumerate(merges):
        vocab[N_BYTES + i] = vocab[left] + vocab[right]
    return vocab


def decode(ids: Iterable[int], merges: Sequence[Pair], errors: str = "strict") -> str:
    """Turn ids back into text: look up each id's bytes, join them, and decode the whole as UTF-8.

    Args:
        ids: token ids from `encode` (or from a model).
        merges: the merges the ids were made with.
        errors: as in `bytes.decode`; ``"strict"`` raises on bytes that are not valid UTF-8,
            ``"replace"`` shows them as ``"\ufffd"``, for display only.

    Returns:
        The text.

    Raises:
        ValueError: if an id is outside the vocabulary; `UnicodeDecodeError` (a ``ValueError``) if the
            bytes are not valid UTF-8 and ``errors="strict"``.

    Examples:
        >>> decode([256, 33], [(104, 105)])
        'hi!'
    """
    ids = list(ids)
    vocab = token_bytes(merges)
    _check_ids(ids, len(vocab))
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors=errors)


def course_corpus(max_chars: int | None = None) -> str:
    """The text of every lesson of the course, in course order, read from the source files.

    Args:
        max_chars: keep only this many characters from the start; ``None`` keeps everything.

    Examples:
        >>> len(course_corpus(max_chars=100))
        100
    """
    from torchenstein.course import lesson_text, lessons, module_path

    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 0):
        raise ValueError(f"max_chars must be None or an int of at least 0, got {max_chars!r}")
    texts: list[str] = []
    for lesson in lessons():
        texts.append(lesson_text(module_path(lesson.module).read_text(encoding="utf-8")))
        # Reading and parsing every lesson takes a while; stop as soon as there is enough text.
        if max_chars is not None and sum(len(t) + 2 for t in texts) >= max_chars:
            break
    return "\n\n".join(texts)[:max_chars]


def token_counts(text: str, vocab_sizes: Iterable[int]) -> dict[int, int]:
    """Train BPE on ``text`` once and report its length in tokens at each vocabulary size.

    Training stops early when no pair repeats; larger sizes then report the last length.

    Examples:
        >>> token_counts("abab abab", [256, 257, 258])
        {256: 9, 257: 5, 258: 3}
    """
    _check_text(text)
    sizes = sorted(set(vocab_sizes))
    for size in sizes:
        _check_vocab_size(size)
    # lengths[k] is the corpus's length after k merges; the vocabulary then holds 256 + k ids.
    lengths = [len(text.encode("utf-8"))]
    lengths += [len(ids) for _, ids in _bpe_steps(text, max(sizes, default=N_BYTES))]
    return {size: lengths[min(size - N_BYTES, len(lengths) - 1)] for size in sizes}


def plot_vocab_tradeoff(
    vocab_sizes: Sequence[int] = (256, 266, 281, 306, 356, 406, 456), max_chars: int = 8000
) -> Figure:
    """Plot tokens per character of the course's text against the BPE vocabulary size."""
    corpus = course_corpus(max_chars=max_chars)
    counts = token_counts(corpus, vocab_sizes)
    fig, (ax,) = lab.new_figure()
    ax.plot(list(counts), [n / len(corpus) for n in counts.values()], marker="o")
    ax.set_xlabel("vocabulary size (256 bytes + merges)")
    ax.set_ylabel("tokens per character")
    ax.set_title(f"BPE on the course's first {len(corpus):,} characters")
    return fig


# The challenge.


def decode_stream(ids: Iterable[int], merges: Sequence[Pair]) -> list[str]:
    """The Professor's answer: one piece of text per id, complete characters only."""
    vocab = token_bytes(merges)
    ids = list(ids)
    _check_ids(ids, len(vocab))
    # The incremental decoder holds back the bytes of an unfinished character until the rest arrive,
    # and raises UnicodeDecodeError (a ValueError) on bytes that can never be valid.
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces = [decoder.decode(vocab[i]) for i in ids]
    # A character still unfinished at the end is an error too.
    decoder.decode(b"", final=True)
    return pieces


def check_decode_stream(candidate: Callable[[list[int], list[Pair]], list[str]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``decode_stream``."""
    merges = train_bpe("éé 🧪🧪 éé 🧪🧪 hello hello", vocab_size=N_BYTES + 8)
    for text, ms in [("", []), ("abc", []), ("é🧪!", []), ("éé 🧪🧪 hi", merges), ("Grüße 🧟", merges)]:
        ids = encode(text, ms)
        where = f"text {text!r} with {len(ms)} merges (ids {ids})"
        got = candidate(ids, ms)
        assert isinstance(got, list), f"{where}: expected a list of strings, got {type(got).__name__}"
        assert len(got) == len(ids), f"{where}: expected one piece per id ({len(ids)}), got {len(got)}"
        assert "".join(got) == text, f"{where}: the pieces join to {''.join(got)!r}, not the text"
        assert "\ufffd" not in "".join(got), f"{where}: a piece holds a replacement character"
    # Each character must appear as soon as its last byte arrives, not later.
    assert candidate(encode("é!", []), []) == ["", "é", "!"], "'é!' as bytes: expected ['', 'é', '!']"
    for bad, why in [([N_BYTES], "an id outside the vocabulary"), ([255], "the byte 0xff, never valid UTF-8"),
                     ([195], "half a character at the end")]:
        try:
            candidate(bad, [])
        except ValueError:
            continue
        raise AssertionError(f"ids {bad} with no merges hold {why}: raise ValueError")


# Argument checks, kept here so the ideas above read first.


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"text must be writable as UTF-8, got a lone surrogate at index {error.start}") from None


def _check_vocab_size(vocab_size: object) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < N_BYTES:
        raise ValueError(f"vocab_size must be an int of at least {N_BYTES} (the byte ids), got {vocab_size!r}")


def _check_merges(merges: object) -> None:
    if isinstance(merges, str | bytes) or not isinstance(merges, Sequence):
        raise TypeError(f"merges must be a list of (int, int) pairs, got {type(merges).__name__}")
    for i, pair in enumerate(merges):
        # Merge i may only use ids that exist before it: the bytes and the merges 0..i-1.
        ok = (isinstance(pair, tuple | list) and len(pair) == 2
              and all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < N_BYTES + i for p in pair))
        if not ok:
            raise ValueError(f"merges[{i}] must be a pair of ids below {N_BYTES + i}, got {pair!r}")


def _check_ids(ids: list[object], vocab_size: int) -> None:
    for i, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise ValueError(f"ids[{i}] must be an int id in [0, {vocab_size}), got {token!r}")
