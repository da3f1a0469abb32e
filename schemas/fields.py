"""Field types shared by the message contracts: the constraints msgspec checks while decoding, and
which the generated JSON Schemas publish."""

from typing import Annotated

from msgspec import Meta

# Ids, versions and topic names this project writes.
Name = Annotated[str, Meta(min_length=1, max_length=256)]

# Ids from outside producers: shops export numeric ids as often as strings. An integer is read as its
# decimal string (``str(value)``), so 214536502 and "214536502" are the same id. int64 bounds it.
_INTEGER_IDS = 'a string, or a non-negative integer read as its decimal string (214536502 is "214536502")'
ExternalId = Annotated[Name | Annotated[int, Meta(ge=0, le=2**63 - 1)], Meta(description=_INTEGER_IDS)]

NonNegative = Annotated[int, Meta(ge=0)]

Sha256 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]
