"""seqlint: find and fix slow Keras Sequence / PyDataset generators.

Importing seqlint never imports tensorflow, keras or numpy, so a pre-commit hook starts fast.
"""

__version__ = "0.1.0"
