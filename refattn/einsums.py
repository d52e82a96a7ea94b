"""The two contractions of attention, spelled as einsum subscripts.

These strings are the definition of the math: the fast paths in :mod:`refattn` execute
them through BLAS, and the tests prove that doing so equals ``np.einsum`` with the very
same strings. They are portable verbatim to ``torch.einsum``, ``jnp.einsum`` and
``tf.einsum``.

Subscripts (one legend everywhere):

| letter | axis | size |
| --- | --- | --- |
| ``...`` | leading batch axes | any number, broadcast between q and k/v |
| ``h`` | key/value head | ``Hkv`` |
| ``g`` | query head within its group | ``G = Hq // Hkv`` (1 without GQA) |
| ``l`` | query position | ``L`` |
| ``s`` | key position | ``S`` |
| ``d`` | query/key feature | ``D`` |
| ``v`` | value feature | ``Dv`` |

Query heads are grouped contiguously: query head ``h * G + g`` reads key/value head
``h``, so a query of shape ``(..., Hq, L, D)`` is viewed as ``(..., Hkv, G, L, D)``
with ``query.reshape(*batch, Hkv, G, L, D)``.
"""

from __future__ import annotations

SCORES = "...hgld,...hsd->...hgls"
"""Logits: query ``(..., Hkv, G, L, D)`` · key ``(..., Hkv, S, D)`` → ``(..., Hkv, G, L, S)``."""

MIX = "...hgls,...hsv->...hglv"
"""Output: weights ``(..., Hkv, G, L, S)`` · value ``(..., Hkv, S, Dv)``
→ ``(..., Hkv, G, L, Dv)``."""
