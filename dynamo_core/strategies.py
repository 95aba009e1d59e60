"""Hypothesis strategies for dynamo_core's types, for your own property-based tests.

Needs the ``hypothesis`` extra. The strategies are also registered with hypothesis through its
``hypothesis`` entry point, so ``st.from_type(TokenRange)`` works once dynamo_core is installed.

Example:
    >>> from hypothesis import given
    >>> from dynamo_core.strategies import token_ranges
    >>> @given(token_ranges())
    ... def test_size(rng):
    ...     assert 1 <= rng.size <= 2**64
"""

from __future__ import annotations

from hypothesis import strategies as st

from dynamo_core._check import MAX_NODE_ID_LEN
from dynamo_core.hashing import TOKEN_SPACE, TokenRange

__all__ = ["keys", "node_ids", "token_ranges", "tokens"]


def keys() -> st.SearchStrategy[str | bytes]:
    """Keys as users pass them: `str` (any UTF-8-encodable text) or `bytes`."""
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=32) | st.binary(max_size=32)


def node_ids() -> st.SearchStrategy[str]:
    """Valid node ids: non-empty printable strings of at most 255 characters."""
    return st.text(
        st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
        min_size=1,
        max_size=min(24, MAX_NODE_ID_LEN),
    )


def tokens() -> st.SearchStrategy[int]:
    """Tokens in ``[0, 2**64)``, with the ends of the circle drawn often."""
    return st.integers(0, TOKEN_SPACE - 1) | st.sampled_from([0, 1, TOKEN_SPACE - 1, 2**63])


def token_ranges() -> st.SearchStrategy[TokenRange]:
    """Token ranges, wrapping and not, including the whole circle."""
    return st.builds(TokenRange, tokens(), st.integers(1, TOKEN_SPACE)) | st.just(
        TokenRange.whole()
    )


def _hypothesis_setup_hook() -> None:
    """Register the strategies for `st.from_type`; called by hypothesis's entry point."""
    st.register_type_strategy(TokenRange, token_ranges())
