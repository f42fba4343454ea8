"""The operator's settings, each declared once (``table.py``), and what is made from them:
the checks of one value (``checks.py``), the declaration calls (``declare.py``) and the
settings in words (``docs.py``: the help's lines and the README's tables). ``config.py``
builds the parser and the loader from the same table."""
