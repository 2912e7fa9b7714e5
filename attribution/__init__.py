"""Attribution Explorer core library: why did a language model produce its output?

Import the submodules you need (``attribution.models``, ``attribution.inseq_runner``,
``attribution.contributions``, ``attribution.compare``, ``attribution.results``); this package
imports nothing heavy itself so that reading a saved result never loads torch.
"""

__version__ = "0.1.0"
