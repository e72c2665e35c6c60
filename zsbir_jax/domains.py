"""The two image domains of sketch-based retrieval, as the integer ids every list and batch uses.

A record's or batch item's `domain` is SKETCH or PHOTO; padding in evaluation batches is -1.
"""
SKETCH = 0
PHOTO = 1
