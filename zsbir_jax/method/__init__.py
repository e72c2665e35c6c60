"""The method: ZS-SBIR loss terms, a recipe's total loss, the EMA teacher, EFF's knowledge table.

Pure functions over arrays and pytrees; may import `domains`, `inference`, `sharding`, `data/`
and `models/`, never `training/` or `evaluation/`.
"""
