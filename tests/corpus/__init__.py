"""The inbound mail corpus: ``build()`` returns every mail with its expectations."""

from tests.corpus.build import OWN_ADDRESSES, PREFIX, CorpusMail, Expect, build

__all__ = ["OWN_ADDRESSES", "PREFIX", "CorpusMail", "Expect", "build"]
