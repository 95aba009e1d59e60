"""Where keys land on the 64-bit token circle, with the public and the keyed hash.

Run it: ``python examples/tokens.py``.
"""

from __future__ import annotations

from dynamo_core import TokenRange, codec, keyed_token, token

SECRET = b"cluster-secret-of-32-bytes------"


def main() -> None:
    for key in ("cart:alice", "cart:bob", b"\x00binary-key"):
        print(f"{key!r:>18}  token={token(key):#018x}  keyed={keyed_token(key, SECRET):#018x}")

    # A range that wraps past the top of the circle: [2**64 - 2**62, 2**62).
    quarter = 2**62
    rng = TokenRange(2**64 - quarter, quarter)
    print("wraps:", rng.wraps, " size / circle:", rng.size / 2**64)
    print("pieces:", rng.pieces())
    print("cart:alice inside:", token("cart:alice") in rng)

    wire = codec.dumps(rng.to_dict())
    print("on the wire:", wire.decode())
    assert TokenRange.from_dict(codec.loads(wire)) == rng


if __name__ == "__main__":
    main()
